# wsikit developer entry points. Two commands for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
# CPU build by default (installs from the local wheel cache where present). For CUDA:
#   make demo TORCH_SPEC="torch" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wsikit-installed
SAMPLE := examples/data/cmu-1-small-region.svs
DEMO_OUT ?= out/demo

.PHONY: venv demo test test-fast lint typecheck bench bench-anchors clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(DEMO_OUT)
	$(VENV)/bin/wsikit info $(SAMPLE) --thumbnail $(DEMO_OUT)/thumbnail.png
	$(VENV)/bin/wsikit tiles $(SAMPLE) $(DEMO_OUT)/tiles --size 224 --mpp 0.5 --overwrite
	$(VENV)/bin/wsikit run $(SAMPLE) --out $(DEMO_OUT)/cmu-1-small-region.wsikit --overwrite
	@echo "demo outputs: $(DEMO_OUT)/thumbnail.png, $(DEMO_OUT)/tiles/ (index: tiles.csv) and $(DEMO_OUT)/cmu-1-small-region.wsikit/"
	@echo "report: $(DEMO_OUT)/cmu-1-small-region.wsikit/report.html"

test: $(STAMP)
	$(PY) -m ruff check wsikit tests benchmarks examples research
	$(PY) -m mypy
	$(VENV)/bin/lint-imports  # the layers contract in .importlinter: arrows down only
	$(PY) -m pytest -n 2 --runslow --doctest-modules wsikit tests

# everything but the tests marked slow (whole-slide runs, training on real data): under 2 minutes
test-fast: $(STAMP)
	$(PY) -m pytest -x -q -n 2 tests

lint: $(STAMP)
	$(PY) -m ruff check wsikit tests benchmarks examples research
	$(PY) -m ruff format --check wsikit tests benchmarks examples research
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/bench_stream.py

# wsikit side by side with TIAToolbox and torchstain (benchmarks/bench_anchors.py) in a separate environment:
# about 2.5 min and 6.5 GB the first time (TIAToolbox pins torch < 2.13: pip takes a CUDA build of 2.12.1)
ANCHORS ?= .venv-anchors
bench-anchors:
	benchmarks/anchors_env.sh $(ANCHORS)
	$(ANCHORS)/bin/python benchmarks/bench_anchors.py --json benchmarks/results_anchors.json

clean:
	rm -rf $(VENV) out .pytest_cache
