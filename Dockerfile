# syntax=docker/dockerfile:1
# The service on PostgreSQL/Redis in production; SQLite under /app/data without settings.
# Dependencies come from the hashed lockfile in their own layer, so a code change rebuilds
# only the last layers; the project itself is installed non-editable, without dependencies.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml alembic.ini ./
COPY app ./app
COPY alembic ./alembic
RUN pip install --no-deps --no-build-isolation .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH APP_HOME=/app
RUN useradd --create-home --uid 10001 agent && mkdir -p /app/data && chown agent /app/data
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Migrations and the project's data files are read from here at run time.
COPY alembic.ini ./
COPY alembic ./alembic
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
# `serve` applies migrations (under an advisory lock) before it listens; pass --no-migrate
# where migrations run as a separate release step.
CMD ["scheduling-agent", "serve", "--host", "0.0.0.0", "--port", "8000"]
