# Glasshouse: the two commands of the README, and the stack's own.
#   make demo   real local stack + the three services, a short load of the order flow, then where to look
#   make test   stack up, cargo deny (deny.toml), then every test of the workspace against it
#   make lint   cargo fmt --check and clippy with warnings as errors (what CI runs first)
#   make chaos  stack up, then the chaos suite (real faults under load, ~15 min), writes docs/reliability.md
#   make bench  release services on the stack: ceilings, max sustainable rate per telemetry setting, footprint, CPU split -> docs/performance.md, target/bench/bench.json
#   make helm-apiserver-check  the Helm chart installed into a real kube-apiserver + etcd (also in make test)
SHELL := /bin/bash
STACK := deploy/local/stack
# Two cores: keep the test harness to two threads; each test is parallel-safe.
TEST_THREADS ?= 2

.PHONY: demo test lint chaos bench up down status install build clean-stack helm-apiserver-check

demo: up
	@bash deploy/local/demo.sh

test: up
	@deploy/local/test-tools.sh
	cargo deny --locked check licenses bans sources
	cargo test --workspace --locked --no-fail-fast -- --test-threads=$(TEST_THREADS)

# The chaos suite (tests/tests/chaos/): its scenarios are #[ignore]d so `make test`
# skips them; here they run one at a time (each starts its own services, and
# some a private PostgreSQL/MariaDB/Kafka), and each writes its row of docs/reliability.md
# (rows of earlier runs are dropped first, so the table is this run's).
chaos: up
	cargo build --workspace --bins --locked
	rm -rf $${CARGO_TARGET_DIR:-target}/tmp/chaos-rows
	cargo test -p glasshouse-tests --test chaos --locked -- --ignored --test-threads=1 --nocapture

# Also run by `make test` (tests/tests/apiserver.rs); test-tools.sh builds etcd and
# kube-apiserver first: once, long (deploy/README.md, "A real API server"), then cached.
helm-apiserver-check:
	@deploy/helm/apiserver-check.sh

# Performance figures (issue 14): deploy/local/bench/bench.py; BENCH_ARGS=--quick for a smoke run.
bench: up
	@deploy/local/test-tools.sh
	@python3 deploy/local/bench/bench.py $(BENCH_ARGS)

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

up:
	@$(STACK) up

down:
	@deploy/local/services.sh down
	@$(STACK) down

status:
	@$(STACK) status

install:
	@$(STACK) install

build:
	cargo build --workspace --all-targets --locked

# Stops the stack and wipes its data (cached binaries and jars stay).
clean-stack:
	@$(STACK) reset
