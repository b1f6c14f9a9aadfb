# The course in three commands:
#   make lab     set up .venv and start JupyterLab on notebooks/
#   make test    set up .venv, run the unit tests, validate every notebook with nbval
#   make course  re-execute every notebook in a fresh kernel, save outputs, render HTML to build/

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

# One BLAS thread: every run of a notebook prints the same numbers as the
# committed outputs, and for the course's small matrices one thread is also the
# fastest (benchmarks/bench_training.py). Tests and `make course` also turn the
# progress bars off. MPLBACKEND is deliberately left alone: notebook kernels
# must keep their inline backend.
BLAS_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
TEST_ENV := $(BLAS_ENV) BNHELPERS_PROGRESS=0

.PHONY: setup lab test unit nbval course bench clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is required, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (bn course)" >/dev/null
	touch $@

# JupyterLab refuses to start as root (common in containers) unless told to.
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	$(BLAS_ENV) $(BIN)/jupyter lab $(LAB_FLAGS) notebooks/

test: unit nbval

unit: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q tests

nbval: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env $(NOTEBOOKS)

course: setup
	mkdir -p build
	for nb in $(NOTEBOOKS); do \
	  echo "== $$nb"; \
	  $(TEST_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	  $(BIN)/jupyter nbconvert --to html --output-dir build "$$nb" || exit 1; \
	done

bench: setup
	$(BIN)/python benchmarks/bench_batchnorm.py
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf build .pytest_cache
