# The project's front door: `make demo` runs the product, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit redis chromium gateways soak bench bench-quick bench-tenants bench-instructions profile venv clean messages
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# `make demo PORT=8081` moves the public port; the admin port follows (PORT + 1010).
PORT ?= 8080
demo: $(STAMP)
	$(VENV)/bin/ticketlog-sso demo --port $(PORT)

# Redis must answer on 127.0.0.1:6379 for the store tests; start it when it does not.
redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
	  command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)"; exit 1; }; \
	  mkdir -p /tmp/ticketlog-sso-redis; \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
	    --dir /tmp/ticketlog-sso-redis --logfile /tmp/ticketlog-sso-redis/redis.log; \
	  for i in 1 2 3 4 5 6 7 8 9 10; do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done; \
	  redis-cli -h 127.0.0.1 -p 6379 ping; }

# The browser end-to-end test drives Debian's Chromium (never `playwright install`,
# which downloads a browser of its own).
chromium:
	@test -x /usr/bin/chromium || { \
	  command -v apt-get >/dev/null || { echo "install Chromium at /usr/bin/chromium"; exit 1; }; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# The forward-auth tests run the shipped nginx and Caddy configurations (deploy/gateways/)
# with Debian's packages; the daemons they would start on install stay stopped.
gateways:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx && command -v caddy >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "install nginx and caddy (Debian: apt-get install nginx caddy)"; exit 1; }; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx caddy; }

lint: $(STAMP)
	$(VENV)/bin/ruff check sidecar tests bench
	$(VENV)/bin/ruff format --check sidecar tests bench
	$(VENV)/bin/mypy

unit: $(STAMP) redis chromium gateways
	$(PY) -m pytest

# The benchmark: one table, every row measured in the same run (bench/run.py). wrk, nginx
# and valgrind are optional (apt-get install wrk nginx valgrind): without wrk a built-in
# load generator is used, without nginx or valgrind their rows are skipped.
bench: $(STAMP) redis
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: $(STAMP) redis
	$(PY) -m bench.run --quick

# The tenants table alone (check-config, start-up, RSS, reload at 10, 1,000, 10,000
# tenants; BENCH_ARGS=--full adds 100,000): bench/tenants.py.
bench-tenants: $(STAMP)
	$(PY) -m bench.tenants $(BENCH_ARGS)

# Instructions per request on the public and signed-in paths, counted under valgrind:
# the noise-free companion of rows (d)-(f) (bench/instructions.py; needs valgrind).
bench-instructions: $(STAMP) redis
	$(PY) -m bench.instructions $(BENCH_ARGS)

# Where the sidecar's CPU goes under load (row (e)); py-spy is not a project dependency.
profile: $(STAMP)
	$(PY) -m pip install --quiet py-spy
	$(PY) -m bench.profile $(PROFILE_ARGS)

# Hundreds of users against two sidecar processes and one Redis (bench/soak.py).
soak: $(STAMP) redis
	$(PY) -m bench.soak

# The pages' and mails' text: extract every message (babel.cfg) and add new ones to each
# language's catalogue, then translate them in sidecar/pages/locale/*/LC_MESSAGES/messages.po
# (the catalogue test fails while one is missing).
messages: $(STAMP)
	mkdir -p build
	$(VENV)/bin/pybabel extract -F babel.cfg --no-location --sort-output -o build/messages.pot .
	$(VENV)/bin/pybabel update -i build/messages.pot -d sidecar/pages/locale \
	  --ignore-obsolete --width 100 --ignore-pot-creation-date

test: lint unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
