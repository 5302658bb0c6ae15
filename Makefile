# The README's two commands: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test report clean

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

# Seed 004's report in both frameworks, side by side (one CPU thread each): REPORT/torch, REPORT/keras
# (python -m core.report; each framework's log in REPORT/<framework>.log).
REPORT ?= report
report: setup
	@mkdir -p $(REPORT)
	@echo "report: training torch and keras side by side; logs in $(REPORT)/torch.log and $(REPORT)/keras.log"
	@start=$$(date +%s); status=0; \
	$(BIN)/python -m core.report --framework torch --out $(REPORT)/torch --threads 1 --overwrite >$(REPORT)/torch.log 2>&1 & torch=$$!; \
	$(BIN)/python -m core.report --framework keras --out $(REPORT)/keras --threads 1 --overwrite >$(REPORT)/keras.log 2>&1 & keras=$$!; \
	wait $$torch || status=1; wait $$keras || status=1; \
	tail -n 1 $(REPORT)/torch.log $(REPORT)/keras.log; \
	echo "report: $$(( $$(date +%s) - start ))s; see $(REPORT)/torch/README.md and $(REPORT)/keras/README.md"; \
	exit $$status

clean:
	rm -rf demo_out .pytest_cache
