# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates its own virtual environment in .venv and installs pinned versions (constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast install clean perf-analyzer

$(BIN)/pt2kit: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	@touch $@

install: $(BIN)/pt2kit

demo: install
	$(BIN)/python examples/demo.py

test: install perf-analyzer
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build out .pytest_cache

# perf_analyzer (Triton's load generator) for tests/test_serve_clients.py: its binary ships inside tritonclient
# 2.50.0's wheel (later wheels leave it out) and needs libb64 (Debian's libb64-0d) and libcudart.so.12 (pip's
# nvidia-cuda-runtime-cu12; no GPU is needed). Best effort: where a step cannot run, the test skips and says why.
PA_WHEEL_DIR := build/perf_analyzer
perf-analyzer: install
	@mkdir -p $(PA_WHEEL_DIR)
	@$(BIN)/pip download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 -d $(PA_WHEEL_DIR) tritonclient==2.50.0 \
	  && $(BIN)/python -c "import sys, zipfile, glob; z = zipfile.ZipFile(glob.glob('$(PA_WHEEL_DIR)/tritonclient-2.50.0-*.whl')[0]); open('$(BIN)/perf_analyzer', 'wb').write(z.read('tritonclient-2.50.0.data/data/bin/perf_analyzer'))" \
	  && chmod 755 $(BIN)/perf_analyzer \
	  && $(BIN)/pip install -q -c constraints.txt nvidia-cuda-runtime-cu12 \
	  || echo "perf-analyzer: could not unpack perf_analyzer; its test will skip"
	@dpkg -s libb64-0d >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq libb64-0d >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libb64-0d >/dev/null)); } \
	  || echo "perf-analyzer: libb64-0d is not installed (apt-get install libb64-0d); the perf_analyzer test will skip"
