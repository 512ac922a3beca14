# The two commands: `make run` (the embedded default) and `make test` (the whole suite). See README.md.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Written after a successful install; older than a requirements file means "install again".
STAMP := $(VENV)/.requirements-installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
# apt-get needs root: through sudo when not root already.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LINT_PATHS := app.py run.py messaging concierge tasks

.PHONY: venv install lock run web demo test test-quick lint bench fuzz

venv: $(STAMP)
install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# requirements-dev.txt is the whole locked set (runtime and dev tools, every version hashed); production
# installs requirements.txt alone, also with --require-hashes.
$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "Installing the locked dependencies into $(VENV) (about a minute the first time)"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on --require-hashes -r requirements-dev.txt
	@touch $@

# Direct dependencies live in requirements.in / requirements-dev.in; this recompiles the locks from them
# (pip-tools in a scratch venv, never in .venv). Run it after editing a .in file and commit all four files.
PIPTOOLS_VENV ?= /tmp/piptools
PIP_COMPILE := $(PIPTOOLS_VENV)/bin/pip-compile --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host
lock:
	@test -x $(PIPTOOLS_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(PIPTOOLS_VENV) && \
		$(PIPTOOLS_VENV)/bin/pip install -q pip==25.3 pip-tools==7.6.2; }
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-dev.txt requirements-dev.in

run: $(STAMP)
	$(BIN)/python -m run

# The demo (concierge/demo.py): events of every type and a few questions, against the service `make run` serves.
demo: $(STAMP)
	$(BIN)/python -m concierge.demo --api $(WEB_API)

# The reference web client (examples/web), on its own origin, against the service `make run` serves.
WEB_PORT ?= 8001
WEB_API ?= http://127.0.0.1:8000
web:
	@echo "Web client: http://127.0.0.1:$(WEB_PORT)/?api=$(WEB_API)  (paste a token printed by make run)"
	$(PYTHON) -m http.server $(WEB_PORT) --bind 127.0.0.1 --directory examples/web

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# tests/unit and tests/api: no process of the service started (real PostgreSQL and Redis still).
test-quick: $(STAMP)
	$(BIN)/pytest tests/unit tests/api $(PYTEST_ARGS)

# Each tool runs even when an earlier one fails, so one pass shows every problem. lint-imports checks the
# import contracts in pyproject.toml (dependencies point one way).
lint: $(STAMP)
	@status=0; \
	echo "ruff check"; $(BIN)/ruff check . || status=1; \
	echo "mypy $(LINT_PATHS)"; $(BIN)/mypy $(LINT_PATHS) || status=1; \
	echo "lint-imports"; $(BIN)/lint-imports --no-logo || status=1; \
	exit $$status

# The load generator (wrk) and pgbench come from Debian's packages; installed here when missing.
bench: $(STAMP)
	@command -v wrk >/dev/null || { echo "installing wrk"; $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	@command -v pgbench >/dev/null || ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || \
		{ echo "installing pgbench"; $(SUDO) apt-get install -y -qq postgresql-client >/dev/null; }
	PYTHONPATH=. $(BIN)/python bench/run.py $(BENCH_ARGS)

# The suite fuzzes every operation with a few seeded examples; this runs many more (FUZZ_EXAMPLES per
# operation, each sent as a guest, a host, an admin and the platform).
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/system/test_fuzz.py -p no:cacheprovider
