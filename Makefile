# The two commands: `make demo` and `make test`. Each does its own set-up on a machine with
# only Python 3.11 and pip: installs uv if missing, then `uv sync --frozen` from uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test test-fast lint format setup system-deps api airflow clean docs

# Airflow 3 for local use: SQLite metadata under ./var/airflow, the project's DAGs, the UI
# and API on loopback only, parallelism for 2 cores. Task processes find the project and its
# data through PYTHONPATH and an absolute TUNEMANTRA_DATA_DIR.
AIRFLOW_ENV = PATH="$(CURDIR)/.venv/bin:$$PATH" PYTHONPATH="$(CURDIR)" \
  AIRFLOW_HOME="$(CURDIR)/var/airflow" AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" \
  AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__PARALLELISM=4 \
  AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=2 AIRFLOW__API__HOST=127.0.0.1 \
  AIRFLOW__API__PORT=8080 TUNEMANTRA_DATA_DIR="$(CURDIR)/var"

demo: setup ## Build the sample label `demo` in ./var (SQLite) and print a summary
	$(RUN) tunemantra demo

# Tests in parallel (pytest-xdist); an idle worker takes tests queued for the other
# (worksteal: 8 min 50 s against 9 min 23 s for whole modules per worker, measured on 2 cores).
# Each worker starts the servers its tests use, once (tests/servers/plugin.py).
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist worksteal

test: setup system-deps ## Every test, the servers started by the tests; the 25 slowest listed
	$(RUN) pytest $(XDIST) --durations=25

# The unit tier also loads the "dev" Hypothesis profile: a quarter of each property's examples
# (tests/conftest.py, examples()); `make test` tries them all.
test-fast: setup ## The unit tier: no server, no end-to-end run (markers integration, slow)
	$(RUN) pytest $(XDIST) -m "not integration and not slow"

lint: setup ## ruff (pinned) + mypy
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: setup
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

api: setup ## Serve the API on http://127.0.0.1:8000 (docs at /docs)
	$(RUN) tunemantra db upgrade
	$(RUN) tunemantra api

airflow: setup ## Airflow 3 standalone: UI on http://127.0.0.1:8080 with the project's DAGs
	@mkdir -p var/airflow
	@echo "Airflow UI: http://127.0.0.1:8080 - user 'admin', password printed below"
	@echo "(and kept in var/airflow/simple_auth_manager_passwords.json.generated)"
	$(AIRFLOW_ENV) airflow standalone

docs: setup ## dbt docs of the analysts' warehouse as a static site in var/warehouse/docs/
	$(RUN) tunemantra warehouse docs

setup:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
	  $(PYTHON) -m pip install --quiet uv || \
	  $(PYTHON) -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --frozen

# Servers the tests start on loopback come from Debian packages: install them where missing.
system-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "installing PostgreSQL server binaries (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing headless Chromium and its driver for the portal tests (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
