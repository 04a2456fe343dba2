# One command each: `make demo` installs and runs the demo, `make test` installs and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test clean

# CPU torch first, pinned: it is served locally, and any other version pulls gigabytes of CUDA.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/tamis run configs/demo.yaml

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf runs .pytest_cache .hypothesis
