# The reconciler worker's image: installed from uv.lock (the same versions as ./dev setup and
# CI), non-root, and able to run with a read-only root filesystem (writes go to /data for the
# RocksDB tables and /tmp, both volumes in the chart).
#
#   docker build --build-arg REVISION=$(git rev-parse --short HEAD) -t reconciler:0.1.0 .
#   docker run --rm reconciler:0.1.0 --help
#
# Python 3.11 (the project's target); uv from PyPI at the version pyproject.toml pins.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/reconciler
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN UV_PIN="$(sed -n 's/.*"uv==\([^"]*\)".*/\1/p' pyproject.toml)" \
    && pip install --no-cache-dir "uv==${UV_PIN}"
# Dependencies first (a layer that changes only with the lock), then the project itself.
RUN uv sync --locked --no-dev --no-install-project --no-editable
COPY schemas ./schemas
COPY streams ./streams
COPY connectors ./connectors
RUN uv sync --locked --no-dev --no-editable

FROM ${PYTHON_IMAGE}
ARG REVISION=unknown
LABEL org.opencontainers.image.title="apogee-moodle-reconciler" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="GPL-3.0-or-later"
RUN groupadd --system --gid 10001 reconciler \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home reconciler \
    && mkdir -p /data && chown 10001:10001 /data
COPY --from=build /opt/reconciler /opt/reconciler
COPY --from=build /src/connectors /opt/reconciler-connectors
ENV PATH=/opt/reconciler/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RECONCILER_BUILD_REVISION=${REVISION} \
    RECONCILER_DATA_DIR=/data \
    RECONCILER_HTTP_HOST=0.0.0.0 \
    RECONCILER_HTTP_PORT=9464
USER 10001:10001
WORKDIR /data
EXPOSE 9464
ENTRYPOINT ["reconciler"]
CMD ["worker"]
