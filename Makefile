# `make demo` and `make test` do all the set-up on a fresh machine (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
# a dropped connection mid-wheel (seen in CI on pyarrow's 55 MB) resumes instead of failing the install
PIP_NET := --retries 10 --resume-retries 30
ALL_STAMP := $(VENV)/.installed-all
# every extra pyproject.toml declares (tests/test_dependencies.py checks this list), so `make test` tests them
# all; `make demo` (and repro-mini, lint, bench) install only what the demo runs: dev (matplotlib for report,
# ruff) and train (clipdpo train); fewer packages, a shorter first run
EXTRAS := dev,train,inputs,zeroshot,report,serving,benchmarks,wandb
DEMO_EXTRAS := dev,train

.PHONY: demo repro-mini repro-rounds test lint bench bench-gpu clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --retries 10 --upgrade pip
	$(PY) -m pip install -q $(PIP_NET) --no-compile -c constraints.txt -e '.[$(DEMO_EXTRAS)]'
	@# byte-compile on every core (pip compiles one file at a time: ~25 s more on 2 cores); like pip, a file
	@# that does not compile is left to the interpreter
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $(STAMP)

$(ALL_STAMP): $(STAMP)
	$(PY) -m pip install -q $(PIP_NET) -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(ALL_STAMP)

demo: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo.sh

repro-mini: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/mini/repro.sh

# repro-mini (reusing every finished step of it) plus rounds 2 and 3 of the selected recipe and of the
# random-ranker control, by examples/iterate.sh: the table of rounds (docs/reproducing.md "Rounds")
repro-rounds: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/mini/repro.sh --set rounds=3 round_controls=random-ranker

test: $(ALL_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash benchmarks/run_all.sh

bench-gpu: $(STAMP)
	PYTHONPATH=src $(PY) benchmarks/gpu.py --out gpu-bench.json

clean:
	rm -rf $(VENV) demo-out mini-out .bench
