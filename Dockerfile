# Tandem: docker build -t tandem . && docker run -p 8080:8080 -v tandem-data:/data tandem
# Then, inside: tandem site add "My shop" --origin https://shop.example.com
#               tandem agent add me@example.com --name Me --role admin

FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TANDEM_HOST=0.0.0.0 \
    TANDEM_PORT=8080 \
    TANDEM_DATA_DIR=/data \
    TANDEM_WEB_DIR=/app/web
WORKDIR /app
COPY pyproject.toml README.md ./
COPY signaling ./signaling
COPY media ./media
COPY cobrowse ./cobrowse
RUN pip install --no-cache-dir . \
    && useradd --system --home /data --uid 10001 tandem \
    && mkdir -p /data && chown tandem /data
COPY --from=web /src/web/dist ./web/dist
USER tandem
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
# SIGTERM from `docker stop` shuts down cleanly: clients are told to reconnect.
STOPSIGNAL SIGTERM
CMD ["tandem", "serve"]
