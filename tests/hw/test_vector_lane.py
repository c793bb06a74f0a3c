# amaranth: UnusedElaboratable=no
"""VectorLane in the Amaranth simulator, element for element against hw.vector_isa.element."""

import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from hw.vector_isa import (A_BITS, B_BITS, ELEMENT_BITS, Amount, BSource, Function, PassConfig, Pre,
                           Round, VectorOp, element)
from hw.vector_lane import PassDecoder, VectorLane, config_of
from model import numerics as nx

FUNCTION_SOURCES = {
    Function.MUL: (BSource.VECTOR, BSource.REGISTER, BSource.SELF, BSource.SIGMOID),
    Function.CODE: (BSource.REGISTER,),
    Function.ADD: (BSource.NONE,),
    Function.EXP2: (BSource.NONE,),
}


def signed_value(rng: random.Random, bits: int) -> int:
    """A signed value of up to ``bits`` bits, of a random length (small values, edges and all)."""
    length = rng.randint(0, bits - 1)
    return rng.choice([rng.randint(-(1 << length), (1 << length) - 1), -(1 << (bits - 1)),
                       (1 << (bits - 1)) - 1, 0, rng.randint(-(1 << length), (1 << length) - 1)])


def random_pass(rng: random.Random) -> tuple[VectorOp, PassConfig]:
    function = rng.choice(list(FUNCTION_SOURCES))
    op = VectorOp(1, 0, function=function, b_source=rng.choice(FUNCTION_SOURCES[function]),
                  b="b" if function in (Function.MUL, Function.CODE) else None,
                  negate=rng.random() < 0.3, pre=rng.choice(list(Pre)), pre_register="r",
                  round=rng.choice(list(Round)), saturate=rng.choice([None, None, nx.RES_BITS, ELEMENT_BITS]),
                  a_shift=Amount("e"), shift=Amount("s"))
    code = function is Function.CODE
    config = PassConfig(a_shift=rng.choice([0, rng.randint(-20, 40), rng.randint(0, 20), 500]),
                        shift=rng.choice([0, rng.randint(-40, 60), rng.randint(0, 36), 33, -300, 300]),
                        b=rng.randint(1 << 16, 1 << 17) if code else signed_value(rng, B_BITS),
                        pre=signed_value(rng, ELEMENT_BITS))
    return op, config


def decoded(lane: VectorLane):
    """A module of ``lane`` behind a PassDecoder, and the decoder's input."""
    m = Module()
    m.submodules.decoder = decoder = PassDecoder()
    m.submodules.lane = lane
    m.d.comb += lane.config.eq(decoder.lane)
    return m, decoder.config


def run_passes(lane: VectorLane, passes: list) -> list:
    """Each (op, config, elements) pass through the lane, the config held for its elements;
    returns (y, error) per element in order."""
    results = []
    top, config_in = decoded(lane)

    async def testbench(ctx):
        for op, config, elements in passes:
            ctx.set(config_in, config_of(op, config))
            await ctx.tick().repeat(PassDecoder.LATENCY)
            for a, b, c in elements:
                ctx.set(lane.i, {"valid": 1, "a": a, "b": b, "c": c})
                await ctx.tick()
                if ctx.get(lane.o.valid):
                    results.append((ctx.get(lane.o.y), ctx.get(lane.o.error)))
            ctx.set(lane.i.valid, 0)
            for _ in range(lane.LATENCY):     # drain with this pass's config held
                await ctx.tick()
                if ctx.get(lane.o.valid):
                    results.append((ctx.get(lane.o.y), ctx.get(lane.o.error)))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize("seed", range(8))
def test_random_passes(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    lane = VectorLane()
    passes = []
    for _ in range(100):
        op, config = random_pass(rng)
        elements = [(signed_value(rng, rng.choice([ELEMENT_BITS, 20, 18, 9])), signed_value(rng, B_BITS),
                     signed_value(rng, rng.choice([ELEMENT_BITS, 12]))) for _ in range(8)]
        passes.append((op, config, elements))
    got = run_passes(lane, passes)
    want = [(y, int(error is not None)) for op, config, elements in passes
            for y, error in (element(op, config, *e) for e in elements)]
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want)):
        op, config, elements = passes[index // 8]
        assert g == w, f"pass {index // 8} element {elements[index % 8]}: {op} {config}"


def test_latency():
    """An element's result comes LATENCY cycles after it goes in."""
    lane = VectorLane(exp2=False, sigmoid=False)
    op = VectorOp(1, 0, function=Function.ADD)
    seen = []
    top, config_in = decoded(lane)

    async def testbench(ctx):
        ctx.set(config_in, config_of(op, PassConfig()))
        await ctx.tick().repeat(PassDecoder.LATENCY)
        ctx.set(lane.i, {"valid": 1, "a": 5, "b": 0, "c": 0})
        await ctx.tick()
        ctx.set(lane.i.valid, 0)
        for cycle in range(1, 20):
            if ctx.get(lane.o.valid):
                seen.append((cycle, ctx.get(lane.o.y)))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [(VectorLane.LATENCY, 5)]


def test_tables_left_out_flag_their_functions():
    lane = VectorLane(exp2=False, sigmoid=False)
    exp2 = VectorOp(1, 0, function=Function.EXP2)
    sigmoid = VectorOp(1, 0, function=Function.MUL, b_source=BSource.SIGMOID)
    got = run_passes(lane, [(exp2, PassConfig(), [(3, 0, 0)]), (sigmoid, PassConfig(), [(3, 0, 0)])])
    assert got == [(0, 1), (0, 1)]
    assert A_BITS == ELEMENT_BITS     # the a port takes a whole element (VectorLane's stages rely on it)
