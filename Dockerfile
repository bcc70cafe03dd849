# One image for the worker, the dashboard and the simulator (the command picks which).
# The build stage makes the wheel exactly as `make test` builds and checks it (tests/check_wheel.py: sdist,
# then the wheel from the sdist); the image installs only that wheel, never the source tree.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY collector ./collector
COPY processing ./processing
COPY dashboard ./dashboard
# twitchwatch/collector, /processing and /dashboard are symlinks to the folders above: the build follows them.
COPY twitchwatch ./twitchwatch
RUN pip install build && python -m build --outdir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /dist/*.whl /tmp/
# The dependency versions `make test` passed with (constraints.txt), not whatever was released since.
COPY constraints.txt /tmp/
RUN pip install --constraint /tmp/constraints.txt /tmp/twitchwatch-*.whl && rm /tmp/twitchwatch-*.whl /tmp/constraints.txt \
    && useradd --create-home --uid 10001 twitchwatch \
    && mkdir -p /var/lib/twitchwatch && chown twitchwatch /var/lib/twitchwatch
USER twitchwatch
# The worker's default state directory (journal, checkpoints, quarantine: docs/reliability.md) when run on
# its own; compose sets TWITCHWATCH_STATE_DIR=/var/lib/twitchwatch, its worker-state volume.
RUN mkdir -p /home/twitchwatch/.local/share/twitchwatch/state
WORKDIR /home/twitchwatch
# Checked from the wheel by `make test` (tests/check_wheel.py runs this CMD in a fresh venv).
CMD ["twitchwatch", "--help"]
