# syntax=docker/dockerfile:1
# Multi-stage: build wheels with the compilers, run on a slim image with only runtime libraries.
FROM python:3.11-slim-bookworm AS build
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
# xmlsec needs libxmlsec1 + its OpenSSL engine at run time; curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxmlsec1 libxmlsec1-openssl libxml2 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin broker
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY migrations ./migrations
COPY config ./config
ENV BROKER_MIGRATIONS_DIR=/app/migrations \
    BROKER_CONFIG=/etc/broker/broker.yaml \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["broker"]
CMD ["serve"]
