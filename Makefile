# Two commands do all the set-up:  `make lab` (open the course)  and  `make test` (run every test).
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
# nbgrader shells out to alembic: the environment's bin/ must be on PATH.
RUN     = PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: lab test env release lint clean-env

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: a CPU build (a local wheel if the machine has one, else the CPU index),
	# unless torch is already there. A plain `pip install torch` on Linux pulls several GB of CUDA.
	$(PY) -c "import torch" 2>/dev/null \
	  || $(PIP) install --no-index --no-deps "torch>=2.1" 2>/dev/null \
	  || $(PIP) install "torch>=2.1" --extra-index-url https://download.pytorch.org/whl/cpu
	$(PIP) install -e ".[course,test]"
	touch $@

env: $(VENV)/.installed

# JupyterLab refuses to run as root unless told; containers (and some CI) run as root.
ALLOW_ROOT = $(if $(filter 0,$(shell id -u)),--allow-root,)

# binder/jupyter holds the Jupyter settings Binder uses too (the announcements pop-up switched off).
lab: $(VENV)/.installed
	$(RUN) JUPYTER_CONFIG_PATH="$(CURDIR)/binder/jupyter" \
	  $(VENV)/bin/jupyter lab --ServerApp.root_dir=course $(ALLOW_ROOT) $(LAB_ARGS)

test: $(VENV)/.installed
	$(RUN) $(PY) -m pytest

lint: $(VENV)/.installed
	$(RUN) $(VENV)/bin/ruff check lftutor tests autograde_tests benchmarks solutions

# Instructors: regenerate the student release in course/ from solutions/ (see README).
release: $(VENV)/.installed
	$(RUN) $(PY) -m lftutor release

clean-env:
	rm -rf $(VENV)
