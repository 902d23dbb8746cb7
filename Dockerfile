# The cva image: the official Airflow image extended with the project's locked
# dependencies and the project itself, all at build time ("Extending the image" in
# Airflow's docker-stack docs). Nothing is installed when a container starts.
#
#   docker compose build          (or: docker build -t cva-airflow:latest .)
#
# The tag must stay the apache-airflow pin of pyproject.toml (a test checks it).
FROM apache/airflow:3.3.2-python3.11

# Folders the airflow user (UID 50000, GID 0) must own: the project and the
# mount point of the cva-data volume. apt/root work only here; pip runs as airflow.
USER root
RUN mkdir -p /opt/cva /opt/cva-data \
    && chown airflow:0 /opt/cva /opt/cva-data \
    && chmod 2775 /opt/cva-data
USER airflow

# The lock file is the project's full, tested set of pins (the same one `make venv`
# installs), so the image's constraints file (~/constraints.txt) is not applied:
# where the two differ, the lock wins. apache-airflow is named with the image's own
# version, as the docs advise, so a pin that would move Airflow fails the build.
# Providers of the image that the lock does not name stay (Celery among them).
COPY --chown=airflow:0 requirements.lock /opt/cva/requirements.lock
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/cva/requirements.lock

# The package, editable so that its project root stays /opt/cva: the defaults of
# CVA_EXPECTATIONS_DIR and the demo's DAG folder are found beside it.
COPY --chown=airflow:0 pyproject.toml README.md /opt/cva/
COPY --chown=airflow:0 cva_tasks /opt/cva/cva_tasks
COPY --chown=airflow:0 benchmarks /opt/cva/benchmarks
RUN pip install --no-cache-dir --no-deps -e /opt/cva

COPY --chown=airflow:0 dags /opt/cva/dags
COPY --chown=airflow:0 plugins /opt/cva/plugins
COPY --chown=airflow:0 expectations /opt/cva/expectations
COPY --chown=airflow:0 docker/simple_auth_passwords.py /opt/cva/docker/simple_auth_passwords.py

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/cva/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/cva/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    CVA_HOME=/opt/cva-data \
    CVA_DATA_ROOT=/opt/cva-data/lake

# Fail the build, not the first run, if the executor or the DAGs do not import.
RUN python -c "import airflow.providers.celery.executors.celery_executor" \
    && python -c "from airflow.dag_processing.dagbag import DagBag; \
bag = DagBag('/opt/cva/dags'); \
assert bag.dag_ids and not bag.import_errors, bag.import_errors; print(sorted(bag.dag_ids))"
