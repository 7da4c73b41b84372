# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PLINTH_ENV=production PLINTH_DATA_DIR=/var/lib/plinth
WORKDIR /app

COPY requirements/base.txt requirements/base.txt
RUN pip install --no-cache-dir --require-hashes -r requirements/base.txt

COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --system --home /var/lib/plinth --create-home plinth
USER plinth

EXPOSE 8000
CMD ["gunicorn", "controlplane.wsgi", "--config", "controlplane/gunicorn_conf.py"]
