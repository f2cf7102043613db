# Each target bootstraps .venv by itself on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint wheel-check bench bench-camvid bench-dsb2018 bench-export bench-serve clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cnnkit demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

# two workers (pytest-xdist), one thread each: 6.5 minutes of tests where one process took 12
test: lint
	$(BIN)/python -m pytest -q -n 2

# the wheel installed in a fresh venv runs the classify demo outside the repository (CI runs it after test)
wheel-check: $(STAMP)
	.ci/wheel_check $(VENV)

bench: $(STAMP)
	$(BIN)/python benchmarks/fashion_mnist.py --data ../shared/datasets/fashion-mnist

bench-camvid: $(STAMP)
	$(BIN)/python -m pip install -qq --disable-pip-version-check -e '.[bench]'
	$(BIN)/python benchmarks/camvid.py --data ../shared/datasets/camvid

bench-dsb2018: $(STAMP)
	$(BIN)/python benchmarks/dsb2018.py --data ../shared/datasets/dsb2018

bench-export: $(STAMP)
	$(BIN)/python benchmarks/export.py

bench-serve: $(STAMP)
	$(BIN)/python benchmarks/serve.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
