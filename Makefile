# Two entry points for a fresh clone: `make run` and `make test`. Both create .venv first,
# with every extra (ImageNet weights, adapt, ray, review) so that CI runs their tests.
VENV ?= .venv
PY := $(VENV)/bin/python
# Use the data shipped beside this checkout when it is there (CI and the team's machines).
ifneq ($(wildcard ../shared/data/omniglot),)
export FEWSHOT_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: setup run test lint format bench
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,pretrained,adapt,ray,review]'
	touch $@

run: setup
	$(VENV)/bin/fewshot eval --ways 5 --shots 1

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# pytest exits 5 when it collects no test: that is not a failure of the code.
test: lint
	$(PY) -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc
