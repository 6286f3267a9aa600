# The service on PostgreSQL/Redis in production; SQLite under /app/data without settings.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml ./
COPY app ./app
COPY alembic ./alembic
COPY alembic.ini ./
RUN pip install -e . && useradd --create-home agent && mkdir -p /app/data && chown agent /app/data

USER agent
EXPOSE 8000
# `serve` applies migrations before it starts listening.
CMD ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
