# Thin aliases over npm and the training package. Every target installs what it needs first,
# so `make serve` and `make test` work on a fresh machine with Node 20 + npm and Python 3.11.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := training/.venv
# schemathesis for the contract fuzz, in its own venv: it is a test tool of the service, not of the training package
# (whose pytest would otherwise load its plugin), and its pins never meet torch's.
CONTRACT_VENV := test/contract/.venv
# kubernetes-validate for the Kubernetes manifests, in its own venv for the same reason.
DEPLOY_VENV := deploy/.venv
# Label Studio (PyPI, pinned) for the ML-backend end-to-end test, in its own venv: its Django stack meets nothing else.
LS_VENV := test/label-studio/.venv
DATA ?= $(if $(wildcard ../shared/data/ferplus),../shared/data/ferplus,)
BUNDLE ?= models/default
RUN_DIR ?= training/runs/ferplus-ce-cal
FINETUNE_DIR ?= training/runs/ferplus-ce-cal-reframe
# the held-out share the bundle's thresholds, temperature and reliability are measured on (issue 17)
CALIBRATION ?= 0.1
FIXTURES := test/fixtures/generated
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# onnxruntime-node's install script downloads CUDA binaries (no network here, and CUDA is opt-in:
# see docs/configuration.md, "GPU"). npm 11.16 and later skip it by package.json's "allowScripts"; npm 10 reads only
# this variable (an .npmrc key would do too, but npm 11 warns about the unknown key on every call).
export ONNXRUNTIME_NODE_INSTALL := skip

# pip install, quiet, keeping its exit status but not the one "WARNING: Location '...' is ignored" line per package
# and configured local index that lacks it (about 90 per venv on machines with such an index).
# $(call pip_install,VENV,ARGS)
pip_install = set -o pipefail; $(1)/bin/pip install --quiet --disable-pip-version-check $(2) 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }

.PHONY: help setup serve test test-python test-node test-contract test-deploy test-label-studio test-container browser postgres podman train finetune clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.installed: training/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(call pip_install,$(VENV),-e 'training[dev]')
	touch $@

dist/.built: node_modules/.installed $(shell find src -name '*.ts' 2>/dev/null) tsconfig.json tsconfig.build.json
	npm run build
	touch $@

setup: node_modules/.installed $(VENV)/.installed ## install npm packages and the Python virtualenv

serve: dist/.built ## start the service on PORT (default 8080) with models/default
	npm start

test: test-python test-node test-contract test-deploy test-label-studio test-container ## every test, what CI runs: the six test-* targets below (~13 min on 2 cores from a fresh clone + ~7 for test-container; ~8 once installed)

# The dataset-audit report is checked in a real headless browser (Debian's chromium).
browser: ## install Debian's chromium with apt (sudo) unless present; test-python checks the audit report in it
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# The audit-trail suites run against PostgreSQL too: vitest's global setup (test/postgres-setup.ts) starts a throwaway
# cluster with initdb and pg_ctl (as the postgres user when run as root) on 127.0.0.1:55419 and stops it afterwards.
postgres: ## install Debian's postgresql with apt (sudo) unless present; test-node runs the audit suites on it too
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends postgresql; }

# The container test builds and runs the Dockerfile with Debian's podman (runc as its runtime: crun refuses this
# machine's cgroups), on a base image it makes with mmdebstrap (test/container/run.sh).
podman: ## install Debian's podman, runc and mmdebstrap with apt (sudo) unless present; test-container uses them
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends podman runc mmdebstrap; }

# node_modules first: the dlib backbone's parity test reads its weights from @vladmandic/face-api (a devDependency)
test-python: $(VENV)/.installed node_modules/.installed browser ## ruff, mypy and pytest of training/ (installs chromium, see browser)
	cd training && .venv/bin/ruff check asm_fer tests && .venv/bin/ruff format --check asm_fer tests
	cd training && .venv/bin/mypy asm_fer
	cd training && .venv/bin/pytest -q -p no:cacheprovider

$(FIXTURES)/bundle/model.json: $(VENV)/.installed $(shell find training/asm_fer -name '*.py')
	rm -rf $(FIXTURES)
	$(VENV)/bin/asm-fer fixtures --out $(FIXTURES)

test-node: node_modules/.installed $(FIXTURES)/bundle/model.json postgres ## tsc and vitest of the service (installs postgresql, see postgres)
	npm run typecheck
	npm test

$(CONTRACT_VENV)/.installed: test/contract/requirements.txt
	test -x $(CONTRACT_VENV)/bin/python || $(PYTHON) -m venv $(CONTRACT_VENV)
	$(call pip_install,$(CONTRACT_VENV),-r test/contract/requirements.txt)
	touch $@

# schemathesis against the real server, without and with an API key, fixed seed (test/contract/fuzz.ts; the failures
# it drops are listed with their reasons in test/contract/hooks.py). Ends with "contract fuzz: ok|FAILED ...".
test-contract: node_modules/.installed $(FIXTURES)/bundle/model.json $(CONTRACT_VENV)/.installed ## fuzz the server against openapi.yaml with schemathesis
	npx tsx test/contract/fuzz.ts

$(DEPLOY_VENV)/.installed: deploy/requirements.txt
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(call pip_install,$(DEPLOY_VENV),-r deploy/requirements.txt)
	touch $@

# Offline: deploy/kubernetes against the Kubernetes JSON schemas (strict) and the CRD schemas in
# deploy/kubernetes/schemas, the facts tying them to the service, and deploy/tests/broken rejected. No cluster.
test-deploy: $(DEPLOY_VENV)/.installed ## validate the Kubernetes manifests in deploy/ (schemas, probes, env, drain, user)
	$(DEPLOY_VENV)/bin/python deploy/check_manifests.py

$(LS_VENV)/.installed: test/label-studio/requirements.txt test/label-studio/constraints.txt
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(call pip_install,$(LS_VENV),-r test/label-studio/requirements.txt)
	test -x $(LS_VENV)/bin/label-studio
	touch $@

# asm-fer as the ML backend of a real Label Studio on loopback (ports 18480 and 18401), test/label-studio/label-studio.e2e.ts.
# ASM_FER_E2E_SCREENSHOT=docs/img/label-studio-data-manager.png also photographs the Data Manager (needs `make browser`).
test-label-studio: node_modules/.installed $(LS_VENV)/.installed ## the Label Studio end-to-end test (installs label-studio into test/label-studio/.venv, ~3 min once)
	npx vitest run -c test/label-studio/vitest.e2e.config.ts

# The Dockerfile's CPU image, built with podman on a local stand-in for node:20.20.2-bookworm-slim (no registry here),
# run as deploy/kubernetes runs it and checked against the service run from source, on FER+ faces from DATA when
# present (test/container/run.sh, container.e2e.ts). Image store and layer cache: test/container/.state (gitignored).
test-container: node_modules/.installed podman ## build the Dockerfile's CPU image and run it as deploy/ does (podman; ~7 min cold, under 1 warm)
	ASM_FER_CONTAINER_FERPLUS=$(DATA) test/container/run.sh

train: $(VENV)/.installed ## train the base recipe on FER+ (DATA=..., RUN_DIR=...) and export to BUNDLE; `make finetune` then gives the shipped model
	@test -n "$(DATA)" || { echo "set DATA=<folder with FER2013Train/ and FER2013Valid/>"; exit 2; }
	$(VENV)/bin/asm-fer train --data $(DATA) --calibration $(CALIBRATION) --run-dir $(RUN_DIR) --export $(BUNDLE) --name ferplus --weights float16 --noisy-base fitted

finetune: $(VENV)/.installed ## fine-tune RUN_DIR's model on detector-like crops (issue 8) into FINETUNE_DIR, export to BUNDLE with flip averaging
	@test -n "$(DATA)" || { echo "set DATA=<folder with FER2013Train/ and FER2013Valid/>"; exit 2; }
	$(VENV)/bin/asm-fer train --data $(DATA) --calibration $(CALIBRATION) --method ce --pretrained $(RUN_DIR)/final.pt --weak-view reframe \
		--epochs 6 --lr 3e-4 --lr-decay 0.75 --run-dir $(FINETUNE_DIR) --export $(BUNDLE) --name ferplus --weights float16 --tta flip --noisy-base fitted

clean: ## remove installed packages, builds, generated fixtures and the container test's image store (not training runs)
	test ! -d test/container/.state || test/container/run.sh --clean
	rm -rf node_modules dist $(VENV) $(CONTRACT_VENV) $(DEPLOY_VENV) $(LS_VENV) $(FIXTURES)
