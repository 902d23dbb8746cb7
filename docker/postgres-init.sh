#!/usr/bin/env bash
# The databases of the cva stack beside Airflow's metadata DB. The postgres image
# runs this once, on an empty data volume; the role's password comes from .env
# (PG_CVA_PASSWORD), passed as a psql variable so it is quoted by psql itself.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v cva_password="${PG_CVA_PASSWORD:?}" \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE USER cva WITH PASSWORD :'cva_password';
CREATE DATABASE demo_shop OWNER cva;
CREATE DATABASE warehouse OWNER cva;
SQL
