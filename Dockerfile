# One Dockerfile, two images (targets), each installing only what its role needs:
#   docker build --target api .      the TuneMantra API and CLI (no Airflow, dbt or GX)
#   docker build --target airflow .  Airflow 3.3 (Celery executor) with the project's DAGs,
#                                    dbt project and the `pipelines` dependency group
# Both run as the unprivileged user `tunemantra` (uid 50000, Airflow's customary uid).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    PATH="/app/.venv/bin:$PATH" PYTHONPATH=/app
RUN pip install --no-cache-dir "uv>=0.5" \
 && groupadd --gid 50000 tunemantra \
 && useradd --uid 50000 --gid 50000 --create-home --shell /usr/sbin/nologin tunemantra \
 && mkdir -p /app /data && chown tunemantra:tunemantra /app /data
WORKDIR /app
COPY --chown=tunemantra:tunemantra pyproject.toml uv.lock README.md ./
COPY --chown=tunemantra:tunemantra api ./api
COPY --chown=tunemantra:tunemantra cli ./cli
COPY --chown=tunemantra:tunemantra connectors ./connectors
COPY --chown=tunemantra:tunemantra demo ./demo
COPY --chown=tunemantra:tunemantra pipelines ./pipelines
COPY --chown=tunemantra:tunemantra royalty_engine ./royalty_engine
COPY --chown=tunemantra:tunemantra schemas ./schemas
ENV TUNEMANTRA_ENV=production TUNEMANTRA_DATA_DIR=/data

FROM base AS api
# The core dependencies only: --no-default-groups leaves out `pipelines` (Airflow) and `dev`.
RUN uv sync --frozen --no-default-groups && chown -R tunemantra:tunemantra /app/.venv
USER tunemantra
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/openapi.json', timeout=4)"]
CMD ["tunemantra", "api", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS airflow
# The core plus the `pipelines` group: Airflow with the Celery provider, Cosmos, dbt, GX.
RUN uv sync --frozen --no-default-groups --group pipelines \
 && chown -R tunemantra:tunemantra /app/.venv
COPY --chown=tunemantra:tunemantra dags ./dags
COPY --chown=tunemantra:tunemantra dbt ./dbt
ENV AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/app/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__EXECUTOR=CeleryExecutor \
    AIRFLOW__LOGGING__BASE_LOG_FOLDER=/opt/airflow/logs
RUN mkdir -p /opt/airflow/logs /opt/airflow/auth && chown -R tunemantra:tunemantra /opt/airflow
USER tunemantra
EXPOSE 8080 8793
CMD ["airflow", "version"]
