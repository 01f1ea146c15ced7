# mindscope: two commands, `make demo` and `make test`, from a fresh clone with Python >= 3.11 and pip.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mindscope-installed

.PHONY: setup demo test lint layers typecheck unit browser bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first: 2.13.0 is the CPU build on these machines (see README for CUDA builds).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,report]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) -m mindscope demo

lint: setup layers
	$(VENV)/bin/ruff check mindscope tests benchmarks
	$(VENV)/bin/ruff format --check mindscope tests benchmarks

# the dependency rules (import-linter contracts in pyproject.toml) and the declared dependencies
layers: setup
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/deptry .

typecheck: setup
	$(VENV)/bin/mypy mindscope

# Debian's chromium for the report's browser test (root on these machines; skipped quietly elsewhere,
# the test itself then fails with a message naming the missing browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true; \
	  fi; }

# two workers of one torch thread each: the 2 cores shared without OpenMP spin-waiting
unit: setup
	OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n 2

test: lint typecheck browser unit

bench: setup
	@echo "see benchmarks/README.md"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
