# Two entry points for a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv on its own; nothing else needs to be installed first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean notebook-outputs chromium postgresql java

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,spark]'
	$(BIN)/workbench kernel install
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/workbench demo

# The notebook regression tests (nbval) run the templates on this district and compare every output
# with the one stored in the notebook. It is generated apart from the demo's district so that a
# district regenerated with other settings cannot change what the stored outputs are compared with.
REFERENCE_DISTRICT := data/generated/reference-district.duckdb
# A fixed pseudonym secret: which records an extract withholds follows the release key, and the
# stored outputs count them.
NOTEBOOK_ENV := WORKBENCH_WAREHOUSE=$(CURDIR)/$(REFERENCE_DISTRICT) WORKBENCH_REGISTER=sqlite:///$(CURDIR)/data/generated/nbval-register.sqlite WORKBENCH_PSEUDONYM_SECRET=nbval-reference
NOTEBOOKS := templates/*.ipynb

$(REFERENCE_DISTRICT): | $(STAMP)
	$(BIN)/workbench data generate --out $@ --quiet

# The dashboard and form tests drive a real browser: Debian's chromium. Installed here when it is
# missing and this user may run apt-get; otherwise make stops at once with the command to run.
CHROMIUM := /usr/bin/chromium

# $(call debian_package,PACKAGE,PRESENT-TEST,WHAT-NEEDS-IT): install a Debian package when it is
# missing and this user may run apt-get; otherwise stop at once with the command to run.
define debian_package
	@if $(2); then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(1) (Debian package) for $(3)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); \
	else \
	  echo "$(3) need Debian's $(1). Install it with:"; \
	  echo "    sudo apt-get install $(1)"; \
	  exit 1; \
	fi
endef

chromium:
	$(call debian_package,chromium,[ -x $(CHROMIUM) ],the browser tests)

# The cross-engine tests start throwaway PostgreSQL servers (tests/postgres_server.py) from Debian's
# server binaries; no server needs to be running.
POSTGRES_BIN_GLOB := /usr/lib/postgresql/*/bin/initdb

postgresql:
	$(call debian_package,postgresql,ls $(POSTGRES_BIN_GLOB) >/dev/null 2>&1,the cross-engine tests)

# The Spark tests run Spark in local mode (pyspark from PyPI), which needs a Java runtime, 17 or later.
# Debian's openjdk packages fail to configure where /usr/share/man/man1 is missing (slim images).
java:
	@mkdir -p /usr/share/man/man1 2>/dev/null || true
	$(call debian_package,default-jre-headless,command -v java >/dev/null 2>&1,the Spark tests)

test: $(STAMP) $(REFERENCE_DISTRICT) chromium postgresql java
	$(BIN)/python -m pytest
	$(NOTEBOOK_ENV) $(BIN)/python -m pytest --nbval $(NOTEBOOKS) --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider
	# The analyst notebooks hold live forms and no stored outputs: they must run without error.
	$(NOTEBOOK_ENV) $(BIN)/python -m pytest --nbval-lax notebooks/*.ipynb -p no:cacheprovider

# After an intended change to a template or a measure: re-record the stored outputs, then review
# the diff of every number before committing it.
notebook-outputs: $(STAMP) $(REFERENCE_DISTRICT)
	cd templates && for notebook in *.ipynb; do \
	  $(NOTEBOOK_ENV) ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.kernel_name=workbench --ExecutePreprocessor.timeout=900 \
	    --ExecutePreprocessor.record_timing=False "$$notebook" || exit 1; \
	done

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,spark,bench]'
	$(BIN)/python benchmarks/warehouse_benchmark.py
	$(BIN)/python benchmarks/engines_benchmark.py
	$(BIN)/python benchmarks/disclosure_benchmark.py
	$(BIN)/python benchmarks/bands_benchmark.py
	$(BIN)/python benchmarks/batch_benchmark.py
	$(BIN)/python benchmarks/fill_benchmark.py
	$(BIN)/python benchmarks/district_report_benchmark.py
	$(BIN)/python benchmarks/ledger_benchmark.py
	$(BIN)/python benchmarks/extract_benchmark.py
	$(BIN)/python benchmarks/guard_benchmark.py
	$(BIN)/python benchmarks/dashboard_benchmark.py

clean:
	rm -rf $(VENV) data/generated releases
