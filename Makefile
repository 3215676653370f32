# One-command entry points. `make demo` and `make test` set everything up first.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel of torch. On a machine without a local wheel, add PyTorch's CPU index, e.g.
#   make TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" test
# With a CUDA torch already in $(VENV), nothing is reinstalled.
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test smoke lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH) $(TORCH_PIP_ARGS)
	$(BIN)/pip install -q -e ".[test,notebooks]"
	-git rev-parse --git-dir >/dev/null 2>&1 && $(BIN)/nbstripout --install  # strip outputs on commit (.gitattributes)
	touch $@

setup: $(VENV)/.installed

# ResDiT at 2x the toy model's training size, with its defaults (docs/decisions.md; --mode resdit_paper for the
# paper's schedule), then the contact sheet: the same prompt and noise at 1x, 2x and 4x for direct, scaled PE,
# windowed attention, two-stage and ResDiT, each panel with its scores and seconds (about two minutes).
demo: setup
	$(BIN)/resdit generate --prompt "a red striped circle at top left on waves" --height 64 --width 64 \
		--out out/demo.png
	$(BIN)/python -m analysis.demo --out out/demo_sheet.png

test: setup
	$(BIN)/python -m pytest

lab: setup
	$(BIN)/python -m ipykernel install --sys-prefix --name resdit --display-name "resdit (.venv)"
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) out
