# `make demo` and `make test` do all the set-up on a fresh machine (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: demo repro-mini test lint bench bench-gpu clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo.sh

repro-mini: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/mini/repro.sh

test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash benchmarks/run_all.sh

bench-gpu: $(STAMP)
	PYTHONPATH=src $(PY) benchmarks/gpu.py --out gpu-bench.json

clean:
	rm -rf $(VENV) demo-out mini-out .bench
