# syntax=docker/dockerfile:1
# Multi-stage: build wheels with the compilers, run on a slim image with only runtime libraries.
# Linted by hadolint (.hadolint.yaml: any warning fails; tests/deploy/test_dockerfile.py).
FROM python:3.11-slim-bookworm AS build
# Debian packages are not pinned (DL3008): bookworm's archive keeps only the current version of
# each, so a pin breaks the build at the next security update; the base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libxml2-dev libxmlsec1-dev libxmlsec1-openssl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker ./broker
# the server depends on the employee CLI's distribution for the credential formats (awsbroker.delivery)
COPY clients/awsbroker ./clients/awsbroker
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./clients/awsbroker .

FROM python:3.11-slim-bookworm
# xmlsec needs libxmlsec1 + its OpenSSL engine at run time. The user owns only /var/lib/broker
# (signing keys a local stack generates there; Kubernetes mounts them read-only instead).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxmlsec1 libxmlsec1-openssl libxml2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 broker \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin broker \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/broker /var/lib/broker/keys
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY migrations ./migrations
COPY config ./config
ENV BROKER_MIGRATIONS_DIR=/app/migrations \
    BROKER_CONFIG=/etc/broker/broker.yaml \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8000
# /healthz answers 200 while the process is up (Python's own HTTP client: no curl in the image)
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["broker"]
CMD ["serve"]
