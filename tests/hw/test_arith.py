"""The shared combinational helpers against their numerics definitions."""

from amaranth import Module, Signal, signed
from amaranth.sim import Simulator

from hw.arith import fabric_product, rounded_right_shift
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


def test_fabric_product_is_the_product_exhaustively():
    """Every int8 × int8 pair, and a 17-bit unsigned by int8 corner set (the widths the blocks use)."""
    m = Module()
    a, b = Signal(signed(8)), Signal(signed(8))
    product = Signal(signed(16))
    wide, wide_product = Signal(17), Signal(signed(26))
    m.d.comb += [product.eq(fabric_product(a, b)), wide_product.eq(fabric_product(wide, b))]
    wrong = []

    async def bench(ctx):
        for x in range(-128, 128):
            for y in range(-128, 128):
                ctx.set(a, x)
                ctx.set(b, y)
                if ctx.get(product) != x * y:
                    wrong.append((x, y, ctx.get(product)))
        for x in (0, 1, 0x1FFFF, 0x10000, 12345):
            for y in (-128, -1, 0, 1, 127):
                ctx.set(wide, x)
                ctx.set(b, y)
                if ctx.get(wide_product) != x * y:
                    wrong.append((x, y, ctx.get(wide_product)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert wrong == [], f"(a, b, got): {wrong[:5]}"
