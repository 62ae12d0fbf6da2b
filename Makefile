# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates its own virtual environment in .venv and installs pinned versions (constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast install clean

$(BIN)/pt2kit: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

install: $(BIN)/pt2kit

demo: install
	$(BIN)/python examples/demo.py

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build out .pytest_cache
