# The two commands of the README. Both create .venv on first use and install everything.
#   make demo   run the default workflow (the procedural face world) on this machine
#   make test   ruff, snakemake --lint, pytest
#   make study  the default workflow once per seed (0 1 2), then mean +- std and the paper's orderings
# TORCH_SPEC pins the CPU wheel for dev/CI. A GPU user installs a CUDA build of torch into
# .venv first (see README); "pip install" below then keeps it.
PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP      := $(VENV)/.installed

.PHONY: demo test study

SEEDS ?= 0 1 2

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,landmarks]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/default
	$(BIN)/snakemake --profile profiles/default --report results/report.html

study: $(STAMP)
	$(BIN)/brownface study --config config/config.yaml --seeds $(SEEDS) --out results-study --cores $$(nproc)

test: $(STAMP)
	$(BIN)/ruff check src tests workflow benchmarks
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/python -m pytest
