# syntax=docker/dockerfile:1
#
# The ticketlog-sso sidecar image.
#
#   docker build -t ticketlog-sso .
#   docker run --read-only -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/config.yaml:/etc/ticketlog-sso/config.yaml:ro" \
#     -v "$PWD/secrets:/var/run/secrets/ticketlog-sso:ro" ticketlog-sso
#   docker run --rm \
#     -v "$PWD/config.yaml:/etc/ticketlog-sso/config.yaml:ro" \
#     -v "$PWD/secrets:/var/run/secrets/ticketlog-sso:ro" ticketlog-sso check-config
#
# The secrets directory holds one file per `*_file` of the config (session-keys,
# redis-url, smtp-password, the client secrets), as the Kubernetes Secret is mounted
# (deploy/k8s/examples/secrets.yaml). The entrypoint is `ticketlog-sso` and the
# default command `serve`, so any command runs as `docker run IMAGE COMMAND ...`.
# The development Entra emulator and the demo are not in the image (.dockerignore
# leaves sidecar/dev out): `ticketlog-sso demo` there says how to run it instead.
#
# Two stages on the same slim Python base: the builder turns the source tree into
# wheels (the project's and every dependency's); the final stage installs those
# wheels offline and carries no compiler, no build backend, no source tree and no
# pip cache. It runs as the numeric user 10001 and writes nothing at run time, so
# it works with a read-only root filesystem (Kubernetes: readOnlyRootFilesystem).
# tests/deploy/test_image.py does what this file does, without Docker.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps everything else out).
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
# The project's wheel first (no dependencies), then the wheels of everything it needs.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/project . \
    && pip wheel --no-cache-dir --wheel-dir /wheels/deps /wheels/project/*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ticketlog-sso" \
      org.opencontainers.image.description="Entra ID single sign-on reverse-proxy sidecar for TicketLog service desks"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TICKETLOG_SSO_CONFIG=/etc/ticketlog-sso/config.yaml
# The wheels are bind-mounted from the builder, never copied into a layer; pip
# installs them offline (--no-index) and byte-compiles at install time, so the
# running process never needs to write a .pyc.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels/deps /wheels/project/*.whl \
    && groupadd --system --gid 10001 ticketlog \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ticketlog \
    && ticketlog-sso --help > /dev/null
USER 10001:10001
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["ticketlog-sso"]
CMD ["serve"]
