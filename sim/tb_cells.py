"""cocotb bench: one memory and two multipliers (:class:`CellProbe`), for checking what a board's
synthesis maps them to (ECP5: DP16KD in each data width, MULT18X18D signed and unsigned) in the
gate-level netlist against Python: random initial contents (the INITVAL layout), random writes and
reads (a read gives the word before a write to it in the same cycle) and random products, seeded.

``TB_PARAMS`` (JSON): :class:`CellProbe`'s ``width`` and ``depth``.
"""

import json
import os
import random

import cocotb
from amaranth import Module, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from sim.streams import reset

CYCLES = 3000


def initial_words(width: int, depth: int) -> list[int]:
    """The memory's initial contents: random words, so that the netlist's INITVAL layout is checked."""
    rng = random.Random(width * depth)
    return [rng.randrange(1 << width) for _ in range(depth)]


class CellProbe(wiring.Component):
    """A ``width`` × ``depth`` memory (initial contents :func:`initial_words`) with a write port and
    a synchronous read port, and the registered products of two signed and two unsigned 18-bit
    operands."""

    def __init__(self, width: int, depth: int):
        self._width, self._depth = width, depth
        super().__init__({
            "w_en": In(1), "w_addr": In(range(depth)), "w_data": In(width),
            "r_addr": In(range(depth)), "r_data": Out(width),
            "a": In(signed(18)), "b": In(signed(18)), "signed_product": Out(signed(36)),
            "c": In(unsigned(18)), "d": In(unsigned(18)), "unsigned_product": Out(unsigned(36)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.words = words = memory.Memory(shape=self._width, depth=self._depth,
                                                   init=initial_words(self._width, self._depth))
        write, read = words.write_port(), words.read_port()
        m.d.comb += [write.en.eq(self.w_en), write.addr.eq(self.w_addr), write.data.eq(self.w_data),
                     read.addr.eq(self.r_addr), self.r_data.eq(read.data)]
        m.d.sync += [self.signed_product.eq(self.a * self.b), self.unsigned_product.eq(self.c * self.d)]
        return m


@cocotb.test()
async def random_words_and_products(dut):
    params = json.loads(os.environ["TB_PARAMS"])
    width, depth = params["width"], params["depth"]
    rng = random.Random(cocotb.RANDOM_SEED)
    dut._log.info(f"seed {cocotb.RANDOM_SEED}")
    for name in ("w_en", "w_addr", "w_data", "r_addr", "a", "b", "c", "d"):
        getattr(dut, name).value = 0
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    words = initial_words(width, depth)
    expected = None
    for cycle in range(CYCLES):
        # a few addresses often (reads of fresh writes), any address sometimes
        w_addr = rng.randrange(depth) if rng.random() < 0.5 else rng.randrange(4)
        r_addr = w_addr if rng.random() < 0.2 else rng.randrange(depth)
        w_en, w_data = rng.random() < 0.3, rng.randrange(1 << width)
        a, b = rng.randint(-(1 << 17), (1 << 17) - 1), rng.randint(-(1 << 17), (1 << 17) - 1)
        c, d = rng.randrange(1 << 18), rng.randrange(1 << 18)
        dut.w_en.value, dut.w_addr.value, dut.w_data.value = int(w_en), w_addr, w_data
        dut.r_addr.value, dut.a.value, dut.b.value, dut.c.value, dut.d.value = r_addr, a, b, c, d
        await RisingEdge(dut.clk)
        if expected is not None:
            got = (int(dut.r_data.value), dut.signed_product.value.to_signed(),
                   int(dut.unsigned_product.value))
            assert got == expected, f"cycle {cycle} (seed {cocotb.RANDOM_SEED}): {got} != {expected}"
        expected = (words[r_addr], a * b, c * d)
        if w_en:
            words[w_addr] = w_data
