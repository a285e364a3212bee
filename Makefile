# Single entry point for building and checking the course. Needs only python3, npm and make.
#
#   make book       build the book into _build/html (warnings are errors)
#   make test       every check: ruff (lint), unit tests, notebooks (nbval), -W book build, student edition,
#                   Colab cells, runtime environment (requirements.txt alone), browser
#   make notebooks  re-execute every chapter in place (for authors, before committing)
#   make notebooks-launch   the launch notebooks (_build/launch: what Binder, Colab, the
#                   download button and the handouts give students; written by every book build)
#   make student    the student edition: _build/student/html and _build/student/notebooks
#   make sync-colab point every chapter's Colab setup cell at _config.yml's repository url
#   make serve      preview _build/html on http://127.0.0.1:8000
#   make clean      remove _build;  make distclean also removes .venv and node_modules

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall only when a requirements file changes (re-runs are fast).
STAMP := $(VENV)/.requirements.stamp
# npm ci writes this file; it is newer than package-lock.json after a successful install.
NODE_STAMP := node_modules/.package-lock.json
# Build-only folder named in _config.yml (html_extra_path): its _static/mathjax/ lands in the site.
MATHJAX_DIR := _build/mathjax/_static/mathjax
MATHJAX := $(MATHJAX_DIR)/tex-mml-chtml.js
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
PORT ?= 8000

.PHONY: book test notebooks notebooks-launch student sync-colab serve clean distclean setup mathjax

book: setup
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	@echo "Book built: _build/html/index.html (preview: make serve)"

# The book build writes them (_ext/launch_notebooks.py, a Sphinx extension of _config.yml):
# every chapter as plain Jupyter Markdown, glue values and figure/exercise numbers filled in.
# The workflow commits them to the branch the launch buttons open (scripts/launch_branch.py).
notebooks-launch: book
	@echo "Launch notebooks: _build/launch/ ($$(ls _build/launch/book/*.ipynb | wc -l) chapters; also behind the download buttons)"

# pytest.ini makes this one run collect tests/ (unit tests, book build, student edition,
# Colab cells, runtime environment, browser) and --nbval over book/*.ipynb.
# -n $(TEST_WORKERS): two pytest-xdist worker processes, one per core of the project's
# machine (pytest.ini and tests/conftest.py say how the work is split; `make test
# TEST_WORKERS=0` runs serially). OPENBLAS_NUM_THREADS=1, inherited by every kernel: with two
# workers, their kernels and the browser busy at once, OpenBLAS's second thread only spins
# (measured: 90 s -> 55 s wall, 129 s -> 79 s CPU for the glmer/bootstrap/fit tests and two
# chapters on two workers). Timings: README.md.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/ruff check .
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS)

# Every solution removed, from the HTML and from the notebooks (scripts/student_edition.py).
# The full book is built first: its rendered solutions are what the leak check looks for.
student: book
	$(BIN)/python scripts/student_edition.py

# After changing `repository: url:` in _config.yml (scripts/sync_colab.py).
sync-colab: setup
	$(BIN)/python scripts/sync_colab.py

setup: $(STAMP) $(MATHJAX)

mathjax: $(MATHJAX)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip check
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# MathJax 3 (es5 build) from npm, served from the site itself: no CDN at view time.
$(MATHJAX): $(NODE_STAMP)
	rm -rf _build/mathjax
	mkdir -p $(dir $(MATHJAX_DIR))
	cp -R node_modules/mathjax/es5 $(MATHJAX_DIR)
	touch $@

# Re-run every chapter top to bottom and store the fresh outputs, in file-name order, with
# the venv's kernel "python3" (JUPYTER_PREFER_ENV_PATH: the venv's kernelspec wins over a
# user-wide one) and the notebook's folder as working directory, as nbval runs them.
# `jupyter execute` is nbclient's command line: the engine of `jupyter nbconvert --execute`,
# already installed with jupyter-book and nbval.
notebooks: setup
	@if [ -z "$(NOTEBOOKS)" ]; then echo "No notebooks in book/ yet."; fi
	@set -e; for nb in $(NOTEBOOKS); do \
		echo "Executing $$nb"; \
		JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter execute --inplace \
			--kernel_name=python3 --timeout=1200 "$$nb"; \
	done
	$(BIN)/python scripts/clean_notebooks.py $(NOTEBOOKS)

serve:
	@test -f _build/html/index.html || { echo "Run 'make book' first."; exit 1; }
	@echo "Serving _build/html at http://127.0.0.1:$(PORT)/ (Ctrl-C to stop)"
	cd _build/html && $(PYTHON) -m http.server $(PORT) --bind 127.0.0.1

clean:
	rm -rf _build .pytest_cache

distclean: clean
	rm -rf $(VENV) node_modules
