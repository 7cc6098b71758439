# GenAI Playground in a container: the bundled models, offline, on port 7860.
#
#   docker build -t genai-playground .                                   # CPU torch
#   docker build -t genai-playground:cuda --build-arg TORCH_CUDA=cu128 .   # CUDA torch
#   docker run --rm -p 127.0.0.1:7860:7860 -v playground-data:/data genai-playground
#
# Or `docker compose up` (compose.yaml). CI here builds it with podman from a base made locally
# (.ci/container-base.sh) and a local torch wheel: see tests/app/test_container.py.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# Everything installs from the hashed locks (requirements*.lock, `make lock`), torch included: its CPU
# build is found on PyTorch's CPU index (TORCH_INDEX) or, empty, on the index pip is configured with
# plus PIP_FIND_LINKS (e.g. a directory bind-mounted at build). TORCH_CUDA (e.g. cu128) installs the
# CUDA build of the same torch version from PyTorch's index instead: that one wheel is not in the lock.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_CUDA=
# pip's own settings, passed to pip when given (empty = pip's defaults): a local wheel directory
# (bind-mounted at build time, e.g. `-v /opt/wheels:/wheels:ro`), a CA bundle for a TLS-inspecting proxy.
# Build-time only: they are not in the image's environment.
ARG PIP_FIND_LINKS=
ARG PIP_CERT=

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# uid 1000, as Docker Spaces require; HOME is theirs. /data is the volume: share links and hub downloads.
RUN useradd --create-home --uid 1000 --shell /bin/bash user \
 && mkdir -p /data /opt/playground-cache \
 && chown 1000:1000 /data /opt/playground-cache

# The dependencies first: this layer is rebuilt only when a lock changes. --no-deps: the locks are the
# whole environment, so pip resolves nothing and a new release upstream changes nothing.
COPY requirements-torch.txt requirements-torch.lock requirements.lock requirements-bundled.lock /tmp/req/
RUN for v in PIP_FIND_LINKS PIP_CERT; do eval "[ -n \"\$$v\" ]" || unset $v; done \
 && python3 -m venv /opt/venv \
 && if [ -n "$TORCH_CUDA" ]; then \
      version=$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' /tmp/req/requirements-torch.txt) \
      && pip install -q --index-url "https://download.pytorch.org/whl/$TORCH_CUDA" "torch==$version"; \
    else \
      pip install -q --require-hashes --no-deps ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        -r /tmp/req/requirements-torch.lock; \
    fi \
 && pip install -q --require-hashes --no-deps -r /tmp/req/requirements.lock -r /tmp/req/requirements-bundled.lock \
 && rm -rf /tmp/req

ENV HOME=/home/user \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/data/huggingface \
    PLAYGROUND_SHARE_DIR=/data/share \
    PLAYGROUND_CACHE_DIR=/opt/playground-cache

WORKDIR /app
COPY --chown=1000:1000 . /app
USER 1000

# The bundled chat model's GGUF, converted now into the cache dir the app reads (PLAYGROUND_CACHE_DIR,
# in the image, not on /data: an empty or bind-mounted volume would hide it), so the first chat
# neither converts nor needs the network.
RUN python -c "from shared.loaders import convert_smollm2; from shared.settings import parse_settings; \
print('converted:', convert_smollm2(parse_settings([]).cache_dir))"

EXPOSE 7860
# Python as PID 1 ignores SIGTERM; SIGINT stops Gradio cleanly.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('GRADIO_SERVER_PORT', '7860'), timeout=4)"
CMD ["python", "app.py"]
