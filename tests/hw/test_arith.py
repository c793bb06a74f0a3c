"""The shared combinational helpers against their numerics definitions."""

from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

import pytest

from hw.arith import bit_length, bit_length_tree, rounded_right_shift
from model.numerics import rshift_round

WIDTH, SHIFT_BITS = 7, 5        # every 7-bit value with every shift from -16 to 15


def test_rounded_right_shift_is_rshift_round_exhaustively():
    m = Module()
    value, shift = Signal(signed(WIDTH)), Signal(signed(SHIFT_BITS))
    result = rounded_right_shift(m, value, shift, "rounded")
    cases = [(v, s) for v in range(-(1 << (WIDTH - 1)), 1 << (WIDTH - 1))
             for s in range(-(1 << (SHIFT_BITS - 1)), 1 << (SHIFT_BITS - 1))]
    wrong = []

    async def bench(ctx):
        for v, s in cases:
            ctx.set(value, v)
            ctx.set(shift, s)
            expected = int(rshift_round(v, s)) if s > 0 else v
            if ctx.get(result) != expected:
                wrong.append((v, s, ctx.get(result), expected))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert wrong == [], f"(value, shift, got, expected): {wrong[:5]}"


@pytest.mark.parametrize("helper", [bit_length, bit_length_tree])
@pytest.mark.parametrize("width", [1, 7, 8, 11])
def test_bit_length_exhaustively(helper, width):
    m = Module()
    value = Signal(width)
    result = helper(m, value, "length")
    wrong = []

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(value, v)
            if ctx.get(result) != v.bit_length():
                wrong.append((v, ctx.get(result)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert wrong == [], f"(value, got): {wrong[:5]}"
