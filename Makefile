# Two entry points (see README): `make demo` and `make test`.
# Each creates or reuses ./.venv and installs what it needs; nothing else is required.
PYTHON ?= python3
VENV ?= .venv
# torch first, pinned to the CPU wheel these machines carry; elsewhere set TORCH_SPEC to your build
# (e.g. `make test TORCH_SPEC=torch`), or pre-install torch into $(VENV).
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.probekit-installed

.PHONY: demo test env clean-env browser

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/probekit demo

# The report's browser test needs headless Chromium (Debian's `chromium`): installed quietly
# when missing and apt is usable; otherwise that test fails and says how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	  command -v apt-get >/dev/null 2>&1 && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null \
	  || echo "note: could not install chromium; the report's browser test will fail"; }

test: $(STAMP) browser
	$(PY) -m pytest -q -p no:cacheprovider

clean-env:
	rm -rf $(VENV)
