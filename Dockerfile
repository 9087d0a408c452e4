# bone-safety-cds: CDS Hooks 2.0 service (gunicorn), non-root, with a health check.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BONE_CDS_DATA_DIR=/data

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY cds_service ./cds_service
COPY hooks ./hooks
COPY cards ./cards
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bonecds \
    && mkdir -p /data && chown bonecds /data

USER bonecds
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"

# Inside the container the service must listen on all interfaces to be reachable.
CMD ["bone-cds", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
