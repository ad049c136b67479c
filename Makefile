# Two commands set up a fresh machine: `make demo` (the main job on TinyWorld) and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_CPU ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH_CPU)
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

.PHONY: install demo test
install: $(VENV)/.installed

demo: install
	$(VENV)/bin/timelab demo

test: install
	$(VENV)/bin/python -m pytest
