# featviz: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo

.PHONY: install demo test models gallery bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/featviz train --dataset digits --mode joint --epochs 30 --out $(DEMO_OUT)/digits-joint --force
	$(VENV)/bin/featviz info $(DEMO_OUT)/digits-joint

test: install
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache .hypothesis
