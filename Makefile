# Two entry points for a fresh machine (see README.md):
#   make tutorial   set up, then run both offline tutorials end to end -> out/tutorials.html
#   make test       set up, then run the whole test suite
# Setup is a virtual environment in .venv with torch pinned to the local CPU build.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= out

.PHONY: setup test tutorial bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[ml,test,ray]'
	touch $@

test: setup
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(PY) -m pytest -q -ra

tutorial: setup
	rm -rf $(OUT)/workspace
	$(VENV)/bin/thanosql --offline -w $(OUT)/workspace --html $(OUT)/tutorials.html \
		examples/search_image_by_text.sql examples/search_image_by_image.sql

bench: setup
	$(PY) bench/search.py
	$(PY) bench/convert.py
	$(PY) bench/train.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
