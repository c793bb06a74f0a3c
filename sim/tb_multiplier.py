"""cocotb bench: :class:`hw.multiplier.RegisteredMultiplier` instantiated as ECP5 MULT18X18D blocks
(``sim/MULT18X18D.v`` models them) in the operand shapes the engine uses, beside the same
multipliers built without the primitive: random operands every cycle, each product equal to
Python's of the operands presented its latency earlier, on both builds (:class:`MultiplierProbe`),
seeded.

``TB_PARAMS`` (JSON): :class:`MultiplierProbe`'s ``shapes``.
"""

import json
import os
import random
from collections import deque

import cocotb
from amaranth import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from hw.multiplier import LATENCY, RegisteredMultiplier, product_shape
from sim.streams import reset

CYCLES = 2000
KINDS = {"primitive": "MULT18X18D", "fabric": None}


def shape_of(width: int) -> object:
    """A JSON width: negative for signed."""
    return signed(-width) if width < 0 else unsigned(width)


class MultiplierProbe(wiring.Component):
    """For each ``(a_width, b_width)`` of ``shapes`` (a negative width is signed), a
    RegisteredMultiplier on MULT18X18D and one without it: ports ``a{i}``, ``b{i}`` (shared),
    ``p{i}_primitive`` and ``p{i}_fabric``."""

    def __init__(self, shapes):
        self._shapes = [tuple(shape) for shape in shapes]
        ports = {}
        for index, (a_width, b_width) in enumerate(self._shapes):
            product = product_shape(shape_of(a_width), shape_of(b_width))
            ports.update({f"a{index}": In(shape_of(a_width)), f"b{index}": In(shape_of(b_width)),
                          **{f"p{index}_{kind}": Out(product) for kind in KINDS}})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for index, (a_width, b_width) in enumerate(self._shapes):
            for kind, primitive in KINDS.items():
                m.submodules[f"multiplier{index}_{kind}"] = multiplier = RegisteredMultiplier(
                    shape_of(a_width), shape_of(b_width), primitive=primitive)
                m.d.comb += [multiplier.a.eq(getattr(self, f"a{index}")),
                             multiplier.b.eq(getattr(self, f"b{index}")),
                             getattr(self, f"p{index}_{kind}").eq(multiplier.p)]
        return m


def draw(rng: random.Random, width: int) -> int:
    """A random operand of a JSON width, its extremes often."""
    low, high = (-(1 << (-width - 1)), (1 << (-width - 1)) - 1) if width < 0 else (0, (1 << width) - 1)
    return rng.choice([low, high, 0, rng.randint(low, high), rng.randint(low, high)])


@cocotb.test()
async def random_products(dut):
    shapes = json.loads(os.environ["TB_PARAMS"])["shapes"]
    rng = random.Random(cocotb.RANDOM_SEED)
    dut._log.info(f"seed {cocotb.RANDOM_SEED}")
    # per multiplier: the operands presented each cycle, newest last
    history = [deque([(0, 0)] * LATENCY, maxlen=LATENCY + 1) for _ in shapes]
    for index in range(len(shapes)):
        getattr(dut, f"a{index}").value, getattr(dut, f"b{index}").value = 0, 0
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    for cycle in range(CYCLES):
        for index, (a_width, b_width) in enumerate(shapes):
            a, b = draw(rng, a_width), draw(rng, b_width)
            getattr(dut, f"a{index}").value, getattr(dut, f"b{index}").value = a, b
            history[index].append((a, b))
        await RisingEdge(dut.clk)
        if cycle < LATENCY:
            continue
        for index, (a_width, b_width) in enumerate(shapes):
            a, b = history[index][-1 - LATENCY]           # the operands of LATENCY cycles ago
            for kind in KINDS:
                port = getattr(dut, f"p{index}_{kind}").value
                got = port.to_signed() if a_width < 0 or b_width < 0 else int(port)
                assert got == a * b, (f"cycle {cycle} (seed {cocotb.RANDOM_SEED}), multiplier {index} "
                                      f"{shapes[index]} {kind}: {got} != {a} * {b}")
