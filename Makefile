# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

test: setup
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

clean:
	rm -rf demo_out .pytest_cache
