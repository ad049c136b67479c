# Two commands set up a fresh machine: `make demo` (the main job on TinyWorld) and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

.PHONY: install demo test notebooks figures book
install: $(VENV)/.installed

# The demo's figure goes to build/ (ignored by git): the committed figures/demo.png comes from `make figures`.
demo: install
	TIMELAB_FIGURES_DIR=build/figures $(VENV)/bin/timelab demo

test: install
	$(VENV)/bin/python -m pytest

# Execute every notebook and commit it executed: outputs, measured runtime, and its figures in figures/.
notebooks: install
	TIMELAB_FIGURES_DIR=$(CURDIR)/figures $(VENV)/bin/python scripts/execute_notebooks.py --save

# Regenerate the committed figures: every notebook's (with the notebooks) and the demo's (the eval
# figures come from the `timelab eval` commands in benchmarks/results/*.md).
figures: notebooks
	TIMELAB_FIGURES_DIR=$(CURDIR)/figures $(VENV)/bin/timelab demo

# The course book (static HTML, offline) from the committed executed notebooks: build/book/index.html.
book: install
	$(VENV)/bin/python scripts/build_book.py
