# fastai_memstream: the README's two commands (make demo, make test), plus make docs.
# Every target bootstraps .venv from a fresh clone (Python 3.11 and a package registry are all it needs) and is
# quick when .venv is already installed: tools/bootstrap.sh creates, repairs or updates it (PYTHON=... picks the
# interpreter, VENV=... the folder).

SHELL  := bash
.SHELLFLAGS := -o pipefail -c
VENV   ?= .venv
BIN    := $(VENV)/bin
NBDEV_WORKERS ?= 2
export VENV
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

# The three parts of `make test`, also runnable one by one (make check-sync / nbtest / pytest).
# nbdev-test exits 0 when it finds no notebook at all, and pytest exits 5 when it collects no test:
# both count as failures here, so a run that tested nothing never passes.
CHECK_SYNC = $(BIN)/python tools/check_sync.py
# Each notebook in a fresh process (NBDEV_WORKERS at a time): nbdev-test's own workers run several notebooks in one
# interpreter, where a notebook's `@patch`ed builders (defined in its cells) stay on the classes the next notebook uses.
NBTEST     = mkdir -p build && n=$$(ls nbs/*.ipynb | wc -l) && ls nbs/*.ipynb | xargs -P $(NBDEV_WORKERS) -n 1 $(BIN)/nbdev-test 2>&1 \
             | tee build/nbtest.log && test "$$(grep -c '^Success' build/nbtest.log)" -eq "$$n" \
             || { echo "nbdev-test did not test and pass every notebook"; exit 1; }
PYTEST     = $(BIN)/python -m pytest tests

.PHONY: all install demo test check-sync nbtest pytest docs readme bench clean

all: test

install:
	@tools/bootstrap.sh

demo: install
	$(BIN)/python -m fastai_memstream demo

# The library is exactly what the notebooks export, notebooks are clean, README is generated from nbs/index.ipynb;
# then every notebook as a test, then pytest.
test: install
	$(CHECK_SYNC)
	$(NBTEST)
	$(PYTEST)

check-sync: install
	$(CHECK_SYNC)

nbtest: install
	$(NBTEST)

pytest: install
	$(PYTEST)

docs: install
	$(BIN)/python tools/docs_preview.py
	MEMSTREAM_DOCS_CHECK=1 $(BIN)/python -m pytest -q tests/test_docs_preview.py

readme: install
	$(BIN)/python tools/docs_preview.py --readme

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf build _proc _docs .pytest_cache
