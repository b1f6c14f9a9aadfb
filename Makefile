# The course in three commands:
#   make lab     set up .venv and start JupyterLab on notebooks/
#   make test    set up .venv, run the unit tests and validate every course notebook with
#                nbval, on both cores
#   make course  re-execute every notebook in a fresh kernel, save outputs, render HTML to build/
# For maintainers:
#   make claims  execute every notebook (and solution) under seed offsets 1-3 and a rotating offset derived
#                from the commit, two other OpenBLAS kernels, 2 BLAS threads and the oldest supported
#                packages; print a pass/fail table. make claims SEEDS=0-9 sweeps seed offsets 0 to 9 instead;
#                NOTEBOOKS=notebooks/01_*.ipynb restricts either to some notebooks
#   make solutions  validate the worked solutions with nbval (CI runs it after make test)
#   make bench   speed and memory against PyTorch (optional requirements-bench.txt)
#   make lint    ruff: lint rules and formatting (pyproject.toml), as CI runs it
# For instructors (docs/instructors.md):
#   make release                   the student edition in dist/student/ (RELEASE_FLAGS=--withhold-derivation)
#   make grade SUBMISSIONS=folder  grade every submission in folder: grades/grades.csv and feedback
#   make gradescope                the Gradescope autograder zip in dist/gradescope.zip
#   make grader-check              the grader's own proofs: a hostile batch and the mutation run (CI runs it)
#   make nbgrader                  check the master with nbgrader's own generate_assignment (optional .venv-nbgrader)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
SOLUTIONS := $(sort $(wildcard solutions/*.ipynb))

# One BLAS thread: every run of a notebook prints the same numbers as the
# committed outputs, and for the course's small matrices one thread is also the
# fastest (benchmarks/bench_training.py). Tests and `make course` also turn the
# progress bars off. MPLBACKEND is deliberately left alone: notebook kernels
# must keep their inline backend.
BLAS_ENV := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
TEST_ENV := $(BLAS_ENV) BNHELPERS_PROGRESS=0

.PHONY: setup lab test unit notebooks solutions nbval course html claims oldest bench lint release grade gradescope grader-check nbgrader clean

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

test: unit notebooks

# Both cores: test files (and notebooks) are independent; --dist loadfile keeps
# a file's tests, and their module-scoped fixtures, on one worker.
unit: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile tests

# nbval with the reference seeds and 1 BLAS thread: every assert must hold and
# every checked cell must print what is committed. The perturbed configurations
# (other seeds, BLAS kernels, thread counts, oldest packages) are `make claims`.
notebooks: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile --nbval-lax --nbval-current-env $(NOTEBOOKS)

# The worked solutions (instructor material), the same way; CI runs this after make test.
solutions: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -n 2 --dist loadfile --nbval-lax --nbval-current-env $(SOLUTIONS)

nbval: notebooks

course: setup
	for nb in $(NOTEBOOKS) $(SOLUTIONS); do \
	  echo "== $$nb"; \
	  $(TEST_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.kernel_name=python3 "$$nb" || exit 1; \
	  $(BIN)/python tools/strip_widgets.py "$$nb" || exit 1; \
	done
	$(MAKE) html

# HTML that reads offline: MathJax 3 (with its TeX fonts) is copied next to the pages, and the
# page template (tools/offline_html) loads nothing from elsewhere.
MATHJAX_DIR := import mathjax, os; print(os.path.join(os.path.dirname(mathjax.__file__), "static", "mathjax", "es5"))
html: setup
	mkdir -p build
	rm -rf build/mathjax && cp -r "$$($(BIN)/python -c '$(MATHJAX_DIR)')" build/mathjax
	$(BIN)/jupyter nbconvert --to html --output-dir build \
	  --TemplateExporter.extra_template_basedirs=tools --template offline_html \
	  --HTMLExporter.mathjax_url='mathjax/tex-chtml-full.js' $(NOTEBOOKS)

# SEEDS=0-9 (or 0,4,7): a sweep of seed offsets instead of the configurations. NOTEBOOKS given on
# the command line restricts the run to them.
CLAIMS_ARGS := $(if $(SEEDS),--seeds $(SEEDS)) $(if $(filter command line,$(origin NOTEBOOKS)),$(NOTEBOOKS))
claims: setup $(if $(SEEDS),,oldest)
	mkdir -p build
	$(BIN)/python tools/claims.py --table build/claims.md $(CLAIMS_ARGS)

oldest: .venv-oldest/.installed

.venv-oldest/.installed: requirements-oldest.txt pyproject.toml
	test -x .venv-oldest/bin/python || $(PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/python -m pip install --quiet --upgrade pip
	.venv-oldest/bin/python -m pip install --quiet -r requirements-oldest.txt
	.venv-oldest/bin/python -m pip install --quiet --no-deps -e .
	.venv-oldest/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

LINTED := bnhelpers tests tools benchmarks classroom

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

$(VENV)/.dev-installed: $(STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

bench: setup
	$(BIN)/python benchmarks/bench_batchnorm.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_choices.py

# RELEASE_FLAGS=--withhold-derivation: students derive Part 1's closed-form backward pass themselves.
RELEASE_FLAGS ?=
release: setup
	$(BIN)/python -m classroom.release --out dist/student $(RELEASE_FLAGS)

GRADE_FLAGS ?=
grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder-of-submissions [GRADE_FLAGS='--time-limit 60']"; exit 2; }
	$(BLAS_ENV) $(BIN)/python -m classroom.grade "$(SUBMISSIONS)" --out grades $(GRADE_FLAGS)

GRADESCOPE_FLAGS ?=
gradescope: setup
	$(BIN)/python -m classroom.gradescope --out dist/gradescope.zip $(GRADESCOPE_FLAGS)

# The grader's own proofs, slower than make test (CI runs them after make solutions): a batch of
# hostile submissions graded with honest ones, and the mutation run (every catalogued mistake
# loses points, every correct alternative gets full marks).
grader-check: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider -rA classroom/selftest

# nbgrader's own generate_assignment on the master notebooks (optional environment, like make oldest).
nbgrader: setup .venv-nbgrader/.installed
	$(BIN)/python -m classroom.nbgrader_metadata --nbgrader .venv-nbgrader/bin/nbgrader

.venv-nbgrader/.installed: requirements-nbgrader.txt
	test -x .venv-nbgrader/bin/python || $(PYTHON) -m venv .venv-nbgrader
	.venv-nbgrader/bin/python -m pip install --quiet --upgrade pip
	.venv-nbgrader/bin/python -m pip install --quiet -r requirements-nbgrader.txt
	touch $@

clean:
	rm -rf build dist .pytest_cache
