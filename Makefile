# Two entry points a new user needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
UV_VERSION = 0.13.8
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export CVA_HOME ?= $(CURDIR)/.cva

.PHONY: venv demo test lint lock clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"
	$(VENV)/bin/uv pip sync -q --python $(VENV)/bin/python requirements.lock
	$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps -e .
	touch $@

venv: $(VENV)/.installed

demo: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/cva demo

test: venv
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/ruff check .
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/mypy
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/python -m pytest -n 2 -q --durations=15 tests

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

lock:
	$(VENV)/bin/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .airflow .cva .mypy_cache
