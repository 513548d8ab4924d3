FROM python:3.11-slim
WORKDIR /app
RUN pip install --no-cache-dir uv
COPY pyproject.toml uv.lock README.md ./
COPY api ./api
COPY cli ./cli
COPY connectors ./connectors
COPY demo ./demo
COPY pipelines ./pipelines
COPY royalty_engine ./royalty_engine
COPY schemas ./schemas
RUN uv sync --frozen --no-dev
ENV PATH="/app/.venv/bin:$PATH" TUNEMANTRA_ENV=production TUNEMANTRA_DATA_DIR=/data
EXPOSE 8000
CMD ["sh", "-c", "tunemantra db upgrade && tunemantra api --host 0.0.0.0 --port 8000"]
