# The single entry point for people and CI.
PYTHON ?= python3
PIP_STAMP := .hive/.pip-installed

.PHONY: run test unit soak fuzz orders install sandbox-tools infra-up infra-down bench bench-smoke clean

$(PIP_STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@mkdir -p .hive && touch $(PIP_STAMP)

install: $(PIP_STAMP) sandbox-tools

# Shell and python nodes run under bubblewrap (prlimit and setpriv come with util-linux).
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || (apt-get install -y -qq bubblewrap || (apt-get update -qq && \
	  apt-get install -y -qq bubblewrap)) >/dev/null 2>&1 || \
	  { echo "shell and python nodes need bubblewrap: apt-get install bubblewrap"; exit 1; }

run: install
	$(PYTHON) -m hive_streams.cli up

infra-up: install
	$(PYTHON) -m hive_streams.cli kafka up
	$(PYTHON) -m hive_streams.cli postgres up

infra-down:
	-$(PYTHON) -m hive_streams.cli kafka down
	-$(PYTHON) -m hive_streams.cli postgres down

# Exit code 5 (no tests collected) is a failure, not a pass.
test: infra-up
	$(PYTHON) -m pytest -p no:cacheprovider -q -rfE --durations=15 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests ran"; exit 1; fi; exit $$rc

# The fault suite at soak size: 1,200 tasks through kills, freezes and restarts (not part of CI).
soak: infra-up
	HIVE_FAULT_TASKS=$${HIVE_FAULT_TASKS:-1200} $(PYTHON) -m pytest -p no:cacheprovider -q -rfE tests/test_faults.py

# The API fuzzed at five times CI's size (~28,000 requests; not part of CI).
fuzz: infra-up
	HIVE_FUZZ_CASES=$${HIVE_FUZZ_CASES:-225} $(PYTHON) -m pytest -p no:cacheprovider -q -rfE tests/test_hostile_input.py -k fuzzing

# Every order of a task's offers, losses, start, results and cancel within wider bounds than CI's (not part of CI).
orders: install
	HIVE_WIDE_ORDERS=1 $(PYTHON) -m pytest -p no:cacheprovider -q -rfE --timeout=0 --durations=6 tests/test_slot_orders.py

unit: install
	$(PYTHON) -m pytest -p no:cacheprovider -q -m "not stack" $(PYTEST_ARGS)

# Benchmarks vs Celery+Redis and vs the limit -> bench/results/REPORT.md and bench.png (bench/README.md).
# BENCH_ARGS=--full for the issue's sizes; BENCH_ARGS=replay runs one section. Installs its own extras.
bench: infra-up
	$(PYTHON) -m bench $(BENCH_ARGS)

bench-smoke: infra-up
	$(PYTHON) -m bench --smoke --out .hive/bench-smoke $(BENCH_ARGS)

clean: infra-down
	rm -rf .hive
