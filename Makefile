# The two commands of the README: `make run` and `make test`. Both set up everything they need.
SHELL := /bin/bash
VENV := .venv
export CONTAINERS_CONF := $(CURDIR)/gateway/adapters/compute/containers.conf

.PHONY: setup setup-test run test test-s3 lint typecheck bench manifests clean

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

# Embedded default: SQLite + local object store + podman, all under ./.tre-gateway
# (TRE_GATEWAY_DATA_DIR overrides). Evaluation profile: outputs are released once the automated
# checks pass; a TRE keeps the default (human review) by leaving TRE_GATEWAY_EGRESS_REVIEW unset.
run: setup
	@TRE_GATEWAY_EGRESS_REVIEW=$${TRE_GATEWAY_EGRESS_REVIEW:-automatic} bash scripts/run.sh

test: setup-test
	@$(VENV)/bin/ruff check gateway tests benchmarks
	@$(VENV)/bin/mypy
	@$(VENV)/bin/python -m pytest -q -m "not ceph" $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-s3

# The object-store contract against a real Ceph RADOS Gateway (installed and started by the script).
test-s3: setup-test
	@bash scripts/ceph-rgw.sh start >/dev/null
	@$(VENV)/bin/python -m pytest -q -m ceph tests/integration/adapters/storage; status=$$?; \
	  bash scripts/ceph-rgw.sh stop >/dev/null; exit $$status

lint:
	@$(VENV)/bin/ruff check gateway tests benchmarks

bench: setup-test
	@$(VENV)/bin/python -m benchmarks.run

# Re-render the plain manifests from the chart (a test fails when they drift).
manifests:
	@bash scripts/get-helm.sh >/dev/null
	@.tools/bin/helm template tre-gateway helm/tre-gateway --namespace tre-gateway -f k8s-manifests/values.yaml > k8s-manifests/all.yaml

clean:
	rm -rf .tre-gateway .pytest_cache
