# Plataforma de Monitoramento Prudencial — set-up, demo and tests on Debian 12 / Python 3.11.
#   make demo   creates .venv, installs, migrates, loads a demo market, starts the local
#               (simulated-KMS) enclave and serves http://127.0.0.1:8000
#   make test   the whole suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, else SQLite)

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DEMO_VAR := var/demo
PYTEST_ARGS ?=

.PHONY: enclave-context demo test lint format venv system-deps migrate demo-data clean bench messages fuzz

system-deps:
	@# A fresh Debian has python3.11 but may lack venv/pip; install them when we can (root).
	@if ! $(PYTHON) -c "import venv, ensurepip" >/dev/null 2>&1; then \
		echo "Installing python3-venv (Debian)"; \
		if [ "$$(id -u)" = "0" ]; then apt-get update -qq && apt-get install -y -qq python3-venv python3-dev gcc; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv python3-dev gcc; fi; \
	fi

$(STAMP): requirements.txt
	@$(MAKE) --no-print-directory system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

migrate: $(STAMP)
	PRUDENCIAL_VAR_DIR=$(DEMO_VAR) $(PY) manage.py migrate --noinput

demo-data: migrate
	PRUDENCIAL_VAR_DIR=$(DEMO_VAR) $(PY) manage.py setup_roles
	PRUDENCIAL_VAR_DIR=$(DEMO_VAR) $(PY) manage.py sync_schedules
	PRUDENCIAL_VAR_DIR=$(DEMO_VAR) $(PY) manage.py load_demo_market --agents 300

demo: demo-data
	PRUDENCIAL_VAR_DIR=$(DEMO_VAR) $(PY) manage.py run_demo --addr 127.0.0.1:8000

test: $(STAMP)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	$(PY) bench/risk_bench.py
	$(PY) bench/enclave_bench.py

# Fuzz the enclave's request decoder and dispatcher (atheris; not part of `make test`, not in CI).
# New inputs go to a temporary directory; only those adding coverage are merged into the corpus.
FUZZ_SECONDS ?= 600
FUZZ_CPU ?= 0
FUZZ_FLAGS := -timeout=1 -rss_limit_mb=1024 -max_len=32768 -dict=tests/fuzz/enclave.dict
fuzz: $(STAMP)
	@$(PY) -c "import atheris" 2>/dev/null || $(PIP) install --quiet -r requirements-fuzz.txt
	@mkdir -p tests/fuzz/crashes
	@work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && status=0 && \
	export PATH="$(CURDIR)/$(VENV)/bin:$$PATH" FUZZ_KEEP_GOING=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
		MKL_NUM_THREADS=1 && \
	taskset -c $(FUZZ_CPU) $(PY) tests/fuzz/fuzz_enclave_request.py $(FUZZ_FLAGS) \
		-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=tests/fuzz/crashes/ \
		"$$work" tests/fuzz/corpus || status=$$?; \
	taskset -c $(FUZZ_CPU) $(PY) tests/fuzz/fuzz_enclave_request.py $(FUZZ_FLAGS) -merge=1 \
		-artifact_prefix=tests/fuzz/crashes/ tests/fuzz/corpus "$$work"; \
	ls tests/fuzz/crashes; exit $$status

messages: $(STAMP)
	@# Translators' loop: extract, edit locale/en/LC_MESSAGES/django.po, compile (.mo is committed).
	@command -v msgfmt >/dev/null || { [ "$$(id -u)" = "0" ] && apt-get install -y -qq gettext || sudo apt-get install -y -qq gettext; }
	$(PY) manage.py makemessages -l en --no-location --no-wrap --ignore='.venv/*' --ignore='var/*' --ignore='tests/*' --ignore='bench/*' --ignore='docs/*'
	$(PY) manage.py compilemessages --ignore='.venv/*'

clean:
	rm -rf $(VENV) var .pytest_cache

enclave-context: $(STAMP)
	@# The enclave image's build context: exactly the files of enclave_bridge/enclave-image.txt.
	$(PY) -m enclave_bridge.attestation image stage build/enclave-app
	$(PY) -m enclave_bridge.attestation image measure
