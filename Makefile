# twitchwatch — `make demo` runs the product on embedded defaults; `make test` runs the whole suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test check-wheel lint system-deps bench reliability relock clean

install: $(STAMP)

# Reinstall only when the project's dependency list or their tested versions change; a no-op otherwise.
# constraints.txt holds the versions the suite last passed with (see its header; `make relock` renews it).
$(STAMP): pyproject.toml constraints.txt scripts/bootstrap-venv.sh
	@scripts/bootstrap-venv.sh $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)
	@echo "installed into $(VENV)"

demo: install
	@$(VENV)/bin/twitchwatch demo

system-deps:
	@scripts/ensure-system-deps.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install system-deps lint
	$(VENV)/bin/pytest
	$(PY) -m tests.check_wheel

# What a person installs: the sdist, the wheel built from it, installed into a fresh venv and run from
# outside the checkout (--help, --version, config check, detect, the Dockerfile's CMD, the demo and every
# dashboard page in chromium). Part of `make test`; on its own here.
check-wheel: install system-deps
	$(PY) -m tests.check_wheel

bench: install
	@$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,bench]'
	$(PY) -m bench.detector_speed
	$(PY) -m bench.accuracy
	$(PY) -m bench.latency
	$(PY) -m bench.history_build

# Fault injection (docs/reliability.md): 20 random worker kills, broker restarts per command, the journal's cost.
reliability: install
	$(PY) -m bench.worker_kills --trials 4 --kills 5 --seconds 120 --speed 2
	$(PY) -m bench.broker_restart --down 3 --down 12
	$(PY) -m bench.journal_cost --rounds 3 --hours 6

# The newest releases of every dependency, frozen into constraints.txt (keeping its header); then run
# `make test` and commit constraints.txt with what the new versions needed.
relock:
	@scripts/relock.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis test-artifacts
