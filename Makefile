# One-command setup + run. `make train` / `make test` create .venv on first use.
# TORCH picks the PyTorch wheel: the default lets pip choose your platform's build;
# CPU-only machines can use e.g. `make test TORCH=torch==2.13.0` (a local CPU wheel here).
PYTHON ?= python3
TORCH ?= torch>=2.4
# Optional extras installed with the project: spark adds the Spark preprocessing engine
# (data.engine=spark; needs Java 17), postgres the PostgreSQL driver (psycopg 3) for shared
# MLflow and Optuna stores, docs MkDocs for the documentation site. `make test EXTRAS=dev`
# leaves them out.
EXTRAS ?= dev,spark,postgres,docs
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test lint format inspect serve benchmark docs docs-serve clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/python scripts/train.py $(ARGS)

# one pytest-xdist worker per core, each test file on one worker (module fixtures built
# once); most tests wait on subprocesses, so 2 workers on 2 cores cut CI by a third.
# The slowest 25 are printed: where CI time goes. ARGS="-n 0" runs in one process.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=25 $(ARGS)

# make serve RUN=<MLflow run id | runs:/… | models:/<name>@champion> [ARGS="port=5002"]
serve: $(STAMP)
	$(BIN)/python scripts/serve.py model=$(RUN) $(ARGS)

inspect: $(STAMP)
	$(BIN)/python scripts/inspect_data.py $(ARGS)

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on a broken link,
# reference or docstring cross-reference. docs-serve rebuilds it on every change.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict -a 127.0.0.1:8000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) outputs multirun site .pytest_cache .ruff_cache
