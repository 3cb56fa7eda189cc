# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_LOGGING_LEVEL ?= WARNING

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

DEMO_WS := outputs/demo/wuhan_2013

demo: install
	$(VENV)/bin/eco run configs/wuhan_2013_gep.yaml --workspace $(DEMO_WS) --quiet
	$(VENV)/bin/eco catalogue -w $(DEMO_WS) --zone-set region
	$(VENV)/bin/eco catalogue -w $(DEMO_WS) --gep --zone-set districts
	$(VENV)/bin/eco catalogue -w $(DEMO_WS) --gep --zone-set wetland_units
	$(VENV)/bin/eco gep-table -w $(DEMO_WS) --zone-set parcels --top 10
	@echo "outputs: $(DEMO_WS)  (open the COGs and products/*.gpkg in QGIS; 'eco serve -w $(DEMO_WS)' for the map page)"

# pytest exit 5 = no tests collected (e.g. every test deselected): not a failure
PYTEST_OK5 = rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test: install
	$(PY) -m pytest -q; $(PYTEST_OK5)

# the inner loop (< 2 min): no slow, end-to-end, Prefect or browser tests
test-fast: install
	$(PY) -m pytest -q -m "not slow and not e2e and not flows and not browser"; $(PYTEST_OK5)

# ruff (library, flows, tests, bench, scripts) and mypy (the library; settings in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check ecoraster flows tests bench scripts
	$(VENV)/bin/mypy

bench: install   # slow: 10,000² inputs; InVEST side-by-side runs need ../shared/tools/install-invest.sh first
	for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf outputs .pytest_cache .numba_cache
