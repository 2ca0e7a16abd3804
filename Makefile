# featviz: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_OUT ?= runs/demo

.PHONY: install demo test models gallery clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# The main job: trains (or reuses models/) the digits models, a quick hierarchy study, visualizations,
# attacks, and writes the gallery to $(DEMO_OUT)/index.html.
demo: install
	$(VENV)/bin/featviz demo --studies studies --out $(DEMO_OUT) --force

# Regenerate the shipped checkpoints in models/ from their seeds.
models: install
	$(VENV)/bin/featviz demo --models models --save-models --retrain --models-only

# Regenerate the example gallery in gallery/ (reuses models/).
gallery: install
	$(VENV)/bin/featviz demo --studies studies --models models --out gallery --force

test: install
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache .hypothesis
