# maildesk — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= maildesk.toml

.PHONY: run deps test test-quick lint type check bench bench-quick bytecode clean

# The Debian packages the full test suite uses (the same as .ci/run): swaks, mutt (with
# `script` from bsdutils), dovecot-imapd, postfix (a private instance relays to maildesk over
# LMTP and pipes to `maildesk deliver`), the PostgreSQL server, CPython's email test data,
# and chromium with its driver for the dashboard tests. Without them those tests skip.
PY_VERSION   := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
DEB_PACKAGES := swaks mutt bsdutils dovecot-imapd postfix postgresql \
                libpython$(PY_VERSION)-testsuite chromium chromium-driver
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/maildesk: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,learn]'
	@touch $@

# The package's bytecode, compiled ahead: an editable install writes none, and where
# PYTHONDONTWRITEBYTECODE is set every `maildesk` process (a daemon, its pipeline worker, each
# process a test starts) would compile the ~200 modules again, about 0.6 s. Python only
# reads these files when they match the source; compileall skips those that do.
bytecode: $(BIN)/maildesk
	@$(BIN)/python -m compileall -q maildesk

run: $(BIN)/maildesk bytecode
	$(BIN)/maildesk init --config $(CONFIG)
	$(BIN)/maildesk serve --config $(CONFIG)

# Install the Debian packages above (apt-get; sudo unless run as root), as CI does.
deps:
	$(SUDO) apt-get update -q
	$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		$(DEB_PACKAGES)

# Everything, on SQLite and PostgreSQL, on as many workers as the machine has cores.
test: $(BIN)/maildesk bytecode
	$(BIN)/pytest -n auto

# The pure and in-process tests on SQLite: no servers, no processes (markers in pyproject.toml).
test-quick: $(BIN)/maildesk bytecode
	$(BIN)/pytest -n auto -m "not slow and not postgresql"

lint: $(BIN)/maildesk
	$(BIN)/ruff check maildesk tests bench
	$(BIN)/ruff format --check maildesk tests bench
	$(BIN)/lint-imports

type: $(BIN)/maildesk
	$(BIN)/mypy

check: lint type test

# Benchmarks (never part of `make test`): BENCH_ARGS=--quick for a run of a few minutes.
bench: $(BIN)/maildesk bytecode
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-quick: $(BIN)/maildesk bytecode
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) var build *.egg-info
