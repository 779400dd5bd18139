# The livecam API server (and the dashboard it serves). Built by docker-compose.yml:
#   docker compose build api
# Stage 1 fetches the dashboard's one npm dependency (livekit-client, pinned in
# package-lock.json) exactly as scripts/setup-dashboard.sh does outside Docker.
FROM node:22-bookworm-slim AS dashboard
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/setup-dashboard.sh scripts/
RUN mkdir assets && bash scripts/setup-dashboard.sh /src

# Stage 2 builds edge/pionpub, the edge's pion publisher, for every Pi (and amd64 edges),
# exactly as scripts/setup-pionpub.sh does outside Docker; the server hands the builds to
# Pis in /edge-bundle.tar.gz (bin/), where the edge's publisher = "auto" finds them.
FROM golang:1.26-bookworm AS pionpub
WORKDIR /src
COPY edge/pionpub/ edge/pionpub/
COPY scripts/setup-pionpub.sh scripts/
RUN for target in linux/arm64 linux/armv6 linux/amd64; do \
      built=$(XDG_CACHE_HOME=/tmp/cache bash scripts/setup-pionpub.sh "$target") && \
      install -D -m 0755 "$built" "/out/pionpub-${target%%/*}-${target#*/}" || exit 1; \
    done

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/livecam
COPY requirements.txt .
RUN pip install -r requirements.txt
# A fixed unprivileged uid, so a bind-mounted data directory can be chowned to it.
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin livecam \
    && mkdir -p /data && chown livecam:livecam /data
COPY app/ app/
# The edge code and install script: the server hands them to Pis (/edge-bundle.tar.gz).
COPY edge/ edge/
COPY scripts/install-edge.sh scripts/
COPY systemd/livecam-edge.service systemd/
COPY index.html .
COPY assets/ assets/
COPY --from=dashboard /src/assets/vendor/ assets/vendor/
COPY --from=pionpub /out/ bin/
USER livecam
ENV LIVECAM_DATA=/data \
    LIVECAM_HOST=127.0.0.1 \
    LIVECAM_PORT=8000
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=4)"]
# Migrates the database, writes the first admin key to /data/admin.key, then serves.
CMD ["python", "-m", "app"]
