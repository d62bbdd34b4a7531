# Two commands set up everything from a clean clone:
#   make demo   - create .venv, install, tune a matmul and a conv2d on an embedded Ray cluster,
#                 then compare untuned, tuned and numpy
#   make test   - create .venv, install, run the whole test suite
#   make bench  - the benchmark suite next to numpy and PyTorch (ARGS="--quick", "--only gemm", ...)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench golden clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m examples.demo

test: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not serial"
	$(PY) -m pytest -q -m serial

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow and not serial"

bench: $(STAMP)
	$(PY) -m benchmarks $(ARGS)

golden: $(STAMP)
	$(PY) -m pytest -q tests/test_golden.py --update-golden

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
