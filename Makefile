# Two entry points (see README): `make demo` and `make test`.
# Each creates or reuses ./.venv and installs what it needs; nothing else is required.
PYTHON ?= python3
VENV ?= .venv
# torch first, pinned to the CPU wheel these machines carry; elsewhere set TORCH_SPEC to your build
# (e.g. `make test TORCH_SPEC=torch`), or pre-install torch into $(VENV).
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.probekit-installed

.PHONY: demo test env clean-env

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/probekit demo

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

clean-env:
	rm -rf $(VENV)
