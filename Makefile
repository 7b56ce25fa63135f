# SalesPulse. `make help` lists the targets. `make run` and `make test` set up what they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := redis-server openjdk-17-jre-headless maven prometheus prometheus-alertmanager chromium

.DEFAULT_GOAL := help
.PHONY: help deps venv jars run up test test-unit test-integration bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

deps: ## Install the system packages (redis-server, Java 17, Maven, Prometheus, Alertmanager, Chromium) when missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(STAMP) ## Create the virtualenv with the project and its test tools

jars: deps venv ## Fetch the Apache Kafka broker jars (cached in ~/.cache/salespulse)
	$(PY) -c 'from salespulse.devstack import ensure_kafka_jars; print("Kafka jars in", ensure_kafka_jars())'

run: jars ## Run everything locally: Kafka, Redis, processor, API, simulator (SIMULATE=0: no simulator)
	$(PY) -m salespulse.devstack run

up: jars ## Only start the local Kafka and Redis
	$(PY) -m salespulse.devstack up

test: jars ## Run all tests: unit and integration on real local Kafka and Redis
	@$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-unit: venv ## Run the fast unit tests only
	@$(PY) -m pytest -m "not integration"; rc=$$?; [ $$rc -eq 5 ] && { echo "no tests ran" >&2; exit 1; }; exit $$rc

test-integration: jars ## Run the integration tests only
	@$(PY) -m pytest -m integration; rc=$$?; [ $$rc -eq 5 ] && { echo "no tests ran" >&2; exit 1; }; exit $$rc

bench: jars ## Measure throughput, latency, recovery and memory on local Kafka and Redis (report in var/bench/; BENCH_EVENTS=1000000)
	$(PY) -m salespulse.bench

clean: ## Remove the virtualenv and local data (var/)
	rm -rf $(VENV) var .pytest_cache .hypothesis
