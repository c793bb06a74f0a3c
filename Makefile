# Two commands do all the set-up on a fresh Debian machine with Python 3.11:
#   make demo   - create .venv, install tritium, run the demo on the default model
#   make test   - create .venv, install tritium with every extra, run the whole suite
#                 (Icarus, if installed - apt-get install iverilog - joins Verilator in the cocotb runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_MODEL := build/demo-model

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# torch is pinned to the CPU build (2.13.0); transformers + accelerate load BitNet checkpoints.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,torch,sim,fpga]"
	touch $@ $(VENV)/.installed

$(DEMO_MODEL)/config.json: | $(VENV)/.installed
	$(BIN)/tritium random-model $(DEMO_MODEL)

demo: $(VENV)/.installed $(DEMO_MODEL)/config.json
	$(BIN)/tritium inspect $(DEMO_MODEL)
	$(BIN)/tritium generate --checkpoint $(DEMO_MODEL) --prompt "ROMEO:" -n 60
	$(BIN)/tritium generate --checkpoint $(DEMO_MODEL) --prompt "ROMEO:" -n 60 --integer
	$(BIN)/tritium generate --checkpoint $(DEMO_MODEL) --prompt "ROMEO:" -n 60 --integer \
		--temperature 1.0 --top-k 20 --seed 1
	$(BIN)/tritium compare --checkpoint $(DEMO_MODEL) --positions 256

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

clean:
	rm -rf $(VENV) build
