# aicc-export: every target creates what it needs. CI runs `make test` (see .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13 (the Lambda runtime): a working python3.13 on PATH, else pyenv's 3.13.0.
PY313 := $(shell if python3.13 -c 'import sys' >/dev/null 2>&1; then echo python3.13; else echo "env PYENV_VERSION=3.13.0 python"; fi)
VENV := .venv
SAMVENV := .venv-sam
PY := $(VENV)/bin/python
PIP_FLAGS := -q --disable-pip-version-check
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv sam-venv lint typecheck unit test template-check sam-build demo serve lock clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt constraints.txt layers/shared/requirements.txt pyproject.toml
	@$(PY313) -c 'import sys; assert sys.version_info[:2] == (3, 13), f"need Python 3.13, got {sys.version}"'
	$(PY313) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r requirements-dev.txt -c constraints.txt
	# the `aicc-export` console script (cli/), editable: its dependencies are the pins above
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps -e .
	@touch $@

$(SAMVENV)/.installed: requirements-sam.txt
	$(PY313) -m venv $(SAMVENV)
	$(SAMVENV)/bin/pip install $(PIP_FLAGS) -r requirements-sam.txt
	@touch $@

venv: $(VENV)/.installed ## create .venv (Python 3.13, pinned)

sam-venv: $(SAMVENV)/.installed ## create .venv-sam (SAM CLI + cfn-lint)

lint: venv ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv ## mypy over the layer packages
	$(VENV)/bin/mypy

template-check: sam-venv ## cfn-lint with serverless rules, sam validate --lint, sam build
	$(SAMVENV)/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(SAMVENV)/bin/sam validate --lint
	$(MAKE) sam-build

# sam build needs python3.13 on PATH: the project venv provides one.
sam-build: venv sam-venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAMVENV)/bin/sam build --parallel

PYTEST_ARGS ?=
# The template checks (~50 s, mostly waiting on sam build's pip) run beside the tests, their output
# printed after the tests'; either failing fails the target.
test: lint typecheck sam-venv ## everything CI checks: lint, types, all tests, template linters and build
	@log=$$(mktemp); $(MAKE) --no-print-directory template-check >"$$log" 2>&1 & checks=$$!; \
	$(PY) -m pytest -n 2 $(PYTEST_ARGS); tests=$$?; \
	wait $$checks; template=$$?; echo "--- make template-check (ran beside the tests), exit $$template:"; \
	cat "$$log"; rm -f "$$log"; \
	[ $$tests -eq 0 ] && [ $$template -eq 0 ]

# The embedded local stack (local/STACK.md): moto + the CC-FS simulator + the real handlers.
# Options: make demo DEMO_ARGS="--profile flaky --calls 300 --keep-running"
DEMO_ARGS ?=
SERVE_ARGS ?=

demo: venv ## run a day of synthetic CC-FS traffic through the real handlers locally; verify S3 vs ground truth
	$(PY) -m local.stack demo $(DEMO_ARGS)

serve: venv ## run the local stack until Ctrl-C (one JSON line: callback URL, moto endpoint, names, aws CLI)
	$(PY) -m local.stack serve $(SERVE_ARGS)

# Sample events for `sam local invoke -e` (needs Docker), made fresh: the shipped callback event's
# signature is stale after 15 minutes. EVENTS_ARGS="--serve serve.json" signs with a running
# `make serve` stack's credentials and writes env-vars.json for --env-vars.
.PHONY: events
EVENTS_ARGS ?=
events: venv ## write every events/*.json afresh (now, re-signed) into .aws-sam/events
	$(PY) -m local.stack.sample_events $(EVENTS_ARGS)

# Large runs of the hardening suites (issue 6); `make test` runs the same tests with small counts.
.PHONY: fuzz chaos
FUZZ_EXAMPLES ?= 10000
CHAOS_CALLS ?= 10000

fuzz: venv ## fuzz the callback and the bill reader, FUZZ_EXAMPLES (10000) examples each; prints the counts
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -n 2 -rP --show-capture=stdout -p no:cacheprovider \
		tests/unit/test_fuzz_callback.py \
		tests/unit/test_fuzz_bills.py::test_fuzz_bills_rows_or_a_bill_error_within_time_and_memory

chaos: venv ## chaos profile end to end on the local stack over CHAOS_CALLS (10000) calls; prints the counts
	CHAOS_CALLS=$(CHAOS_CALLS) $(PY) -m pytest -rP --show-capture=stdout -p no:cacheprovider tests/chaos/test_chaos.py

# Performance figures vs their targets (issue 7, docs/performance.md); not part of `make test`.
.PHONY: bench bench-smoke
BENCH_ARGS ?=

bench: venv ## performance figures vs targets (~12 min on 2 cores): prints the table, writes bench/results.json
	$(PY) -m bench $(BENCH_ARGS)

bench-smoke: venv ## the benchmark harness on small inputs (~2 min): proves it runs, not the targets
	$(PY) -m bench --smoke $(BENCH_ARGS)

lock: ## regenerate constraints.txt from a fresh resolve
	rm -rf /tmp/aicc-lock && $(PY313) -m venv /tmp/aicc-lock
	/tmp/aicc-lock/bin/pip install $(PIP_FLAGS) -r requirements-dev.txt
	{ echo "# Full pin set of the dev venv (pip freeze). Regenerate with 'make lock'."; /tmp/aicc-lock/bin/pip freeze; } > constraints.txt

clean: ## remove venvs and build output
	rm -rf $(VENV) $(SAMVENV) .aws-sam .pytest_cache .ruff_cache .mypy_cache .hypothesis
