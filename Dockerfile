# One image for the worker, the dashboard and the simulator (the command picks which).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY processing ./processing
COPY dashboard ./dashboard
COPY twitchwatch ./twitchwatch
RUN pip install . && useradd --create-home --uid 10001 twitchwatch
USER twitchwatch
# The worker's journal and checkpoints (docs/reliability.md): a volume in compose, owned by this user.
RUN mkdir -p /home/twitchwatch/.local/share/twitchwatch/state
CMD ["twitchwatch", "--help"]
