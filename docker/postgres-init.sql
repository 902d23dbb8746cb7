-- Databases of the cva stack beside Airflow's metadata DB.
CREATE USER cva WITH PASSWORD 'cva';
CREATE DATABASE demo_shop OWNER cva;
CREATE DATABASE warehouse OWNER cva;
