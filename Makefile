# fastai_memstream: the README's two commands (make demo, make test), plus make docs.
# Every target bootstraps .venv from a fresh clone (Python 3.11 and a package registry are all it needs)
# and is quick when .venv is already installed.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fastai_memstream-installed
NBDEV_WORKERS ?= 2
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

.PHONY: all install demo test check-sync nbtest pytest docs readme bench clean

all: test

# (Re)install when pyproject.toml changes or .venv is missing.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

demo: install
	$(BIN)/python -m fastai_memstream demo

test: install
	$(MAKE) --no-print-directory check-sync
	$(MAKE) --no-print-directory nbtest
	$(MAKE) --no-print-directory pytest

# The library must be exactly what the notebooks export, notebooks clean, README generated from nbs/index.ipynb.
check-sync: install
	$(BIN)/python tools/check_sync.py

nbtest: install
	$(BIN)/nbdev-test --n-workers $(NBDEV_WORKERS) --timing

pytest: install
	$(BIN)/python -m pytest tests

docs: install
	$(BIN)/python tools/docs_preview.py
	MEMSTREAM_DOCS_CHECK=1 $(BIN)/python -m pytest -q tests/test_docs_preview.py

readme: install
	$(BIN)/python tools/docs_preview.py --readme

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf build _proc _docs .pytest_cache
