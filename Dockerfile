# Compute-node image: the ecoraster package, its `eco` CLI and the Prefect flows.
#   docker build -t ecoraster .
#   docker run --rm -v "$PWD/outputs:/app/outputs" ecoraster eco run configs/wuhan_2013.yaml -w outputs/wuhan_2013
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMBA_CACHE_DIR=/tmp/numba_cache \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

WORKDIR /app
# Wheels of rasterio / pyogrio bundle GDAL: no system GDAL needed.
COPY pyproject.toml README.md ./
COPY ecoraster ./ecoraster
COPY flows ./flows
RUN pip install --upgrade pip && pip install .
COPY configs ./configs
COPY data_catalog.yaml ./
COPY data ./data

RUN useradd --create-home eco && chown -R eco /app
USER eco
CMD ["eco", "--help"]
