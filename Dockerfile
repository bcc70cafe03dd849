# One image for the worker, the dashboard and the simulator (the command picks which).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY processing ./processing
COPY dashboard ./dashboard
COPY twitchwatch ./twitchwatch
# /var/lib/twitchwatch: the worker's state (the quarantine), a volume in compose; owned by the user so a fresh
# named volume, which copies the image's directory, is writable.
RUN pip install . && useradd --create-home --uid 10001 twitchwatch \
    && mkdir -p /var/lib/twitchwatch && chown twitchwatch /var/lib/twitchwatch
USER twitchwatch
CMD ["twitchwatch", "--help"]
