# Compute-node image: the ecoraster package, its `eco` CLI, the Prefect flows and deployments.
#
#   docker build -t ecoraster:0.1.0 .
#   # one node, both schedules in one process; serve starts a real Prefect server inside the
#   # container (127.0.0.1:4200, scheduler included), so the 1 March cron fires:
#   docker run -d --name gep -v /data:/data ecoraster:0.1.0
#   # the same with the server as its own service (UI on :4200): deploy/docker-compose.yaml
#   # a worker of a Process work pool on a self-hosted server (stops on SIGTERM):
#   docker run -d -e PREFECT_API_URL=http://prefect:4200/api -v /data:/data ecoraster:0.1.0 \
#       python -m flows.worker --pool gep-process
#   # one run by hand:
#   docker run --rm -v /data:/data ecoraster:0.1.0 eco flow annual configs/wuhan_2013_gep.yaml -w /data/outputs/wuhan_2013
# Step by step, systemd units and the Docker work pool variant: docs/compute-node.md.
FROM python:3.11-slim-bookworm

# Offline and quiet by default (flows/_settings.py sets the same when they are missing).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/tmp/numba_cache \
    PREFECT_HOME=/home/eco/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    PREFECT_LOGGING_LEVEL=INFO \
    PREFECT_LOGGING_TO_API_ENABLED=false \
    DASK_DISTRIBUTED__LOGGING__DISTRIBUTED=error \
    ECORASTER_CONFIG_DIR=/app/configs \
    ECORASTER_HOME=/app \
    ECORASTER_OUTPUT_DIR=/data/outputs

WORKDIR /app
# Wheels of rasterio / pyogrio bundle GDAL: no system GDAL needed. tini reaps Dask worker processes.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
# configs/ before the install: ecoraster/_configs links to it and the wheel ships the tables
COPY configs ./configs
COPY ecoraster ./ecoraster
COPY flows ./flows
RUN pip install --upgrade pip && pip install .
COPY prefect.yaml data_catalog.yaml ./
COPY catalogs ./catalogs
COPY deploy ./deploy
COPY data ./data

RUN useradd --create-home eco && mkdir -p /data && chown -R eco /app /data
USER eco
VOLUME ["/data"]
ENTRYPOINT ["tini", "--"]
# Default: serve both deployments of the full GEP config with a Prefect server started inside
# (its database in $PREFECT_HOME); SIGTERM (docker stop) pauses the schedules, stops the server,
# exits 0. Override the command for `eco …`, `python -m flows.worker --pool …` or
# `prefect server start --host 0.0.0.0` (deploy/docker-compose.yaml).
STOPSIGNAL SIGTERM
EXPOSE 4200
CMD ["python", "flows/serve.py", "--config", "configs/wuhan_2013_gep.yaml", "--workspace", "/data/outputs/wuhan_2013"]
