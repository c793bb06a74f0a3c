# amaranth: UnusedElaboratable=no
"""RegisteredMultiplier: its parameter checks, and (cocotb, sim/tb_multiplier.py) the MULT18X18D
instance with its registers equal, cycle for cycle, to the same multiplier in fabric and to Python,
in the shapes the engine uses and at the port's limits (signed and unsigned operands up to 18 bits)."""

import os

import pytest
from amaranth import signed, unsigned

from hw.multiplier import RegisteredMultiplier, product_shape
from model import paths
from sim.harness import available_simulators, run
from sim.tb_multiplier import MultiplierProbe

SEED = int(os.environ.get("TRITIUM_SEED", "5"))
# (a width, b width); negative widths are signed
SHAPES = [(16, -8), (-8, -8), (-18, -18), (18, 18), (17, -18)]


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_primitive_equals_fabric_and_python(simulator, tmp_path):
    if simulator not in available_simulators():
        pytest.skip(f"no {simulator}")
    run(MultiplierProbe, dict(shapes=SHAPES), design="multipliers", bench="sim.tb_multiplier",
        simulator=simulator, seed=SEED, test_dir=tmp_path,
        extra_sources=[paths.REPO / "sim" / "MULT18X18D.v"])


def test_product_shape():
    assert RegisteredMultiplier(unsigned(16), signed(8)).p.shape() == signed(24)
    assert product_shape(unsigned(18), unsigned(18)) == unsigned(36)


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="MULT18X18D's operands are at most 18 bits, a is 19"):
        RegisteredMultiplier(signed(19), signed(8), primitive="MULT18X18D")
    RegisteredMultiplier(signed(19), signed(8))          # in fabric, any width
    with pytest.raises(ValueError, match="primitive must be one of"):
        RegisteredMultiplier(8, 8, primitive="DSP48E1")
