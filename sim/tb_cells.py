"""cocotb bench: memories, ROMs and two multipliers (:class:`CellProbe`), for checking what a
board's synthesis maps them to (ECP5: DP16KD in each data width, MULT18X18D signed and unsigned;
Gowin: its block RAMs, single-port for the ROMs, and MULT18X18) in the gate-level netlist against
Python: random initial contents (the INITVAL / INIT_RAM layout), random writes and reads (a read
gives the word before a write to it in the same cycle), random ROM reads and random products, seeded.

``TB_PARAMS`` (JSON): :class:`CellProbe`'s ``shapes`` and ``roms``.
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


def initial_words(width: int, depth: int, salt: str = "") -> list[int]:
    """A memory's initial contents: random words, so that the netlist's INITVAL layout is checked
    (``salt``: another memory of the same shape, another draw)."""
    rng = random.Random(f"{width}x{depth}{salt}")
    return [rng.randrange(1 << width) for _ in range(depth)]


MEMORY_PORTS = ("w_en", "w_addr", "w_data", "r_addr", "r_data")


def memory_ports(owner, width: int) -> dict:
    """The ports of the probe's memory of ``width`` on ``owner`` (the probe, or the bench's handle
    of it) by their names in MEMORY_PORTS: ``w_en`` is ``owner.w{width}_en``."""
    return {name: getattr(owner, f"{name[0]}{width}_{name[2:]}") for name in MEMORY_PORTS}


def rom_ports(owner, width: int) -> tuple:
    """The address and data ports of the probe's ROM of ``width`` on ``owner`` (the probe, or the
    bench's handle of it): ``owner.rom{width}_addr``, ``owner.rom{width}_data``."""
    return getattr(owner, f"rom{width}_addr"), getattr(owner, f"rom{width}_data")


def rom_words(width: int, depth: int) -> list[int]:
    """A ROM's contents: :func:`initial_words` drawn apart from a memory of the same shape."""
    return initial_words(width, depth, "rom")


class CellProbe(wiring.Component):
    """A memory of each (width, depth) of ``shapes`` (initial contents :func:`initial_words`), each
    with a write port and a synchronous read port (ports ``w{width}_en``, ``_addr``, ``_data``,
    ``r{width}_addr``, ``_data``), a ROM of each of ``roms`` with a synchronous read port
    (``rom{width}_addr``, ``_data``), and the registered products of two signed and two unsigned
    18-bit operands. One design for every shape: one simulator build."""

    def __init__(self, shapes, roms=()):
        self._shapes = [tuple(shape) for shape in shapes]
        self._roms = [tuple(shape) for shape in roms]
        for kind, shapes_of_kind in (("memory", self._shapes), ("ROM", self._roms)):
            widths = [width for width, _ in shapes_of_kind]
            if len(set(widths)) != len(widths):
                raise ValueError(f"one {kind} per width: {widths} repeats one")
        ports = {"a": In(signed(18)), "b": In(signed(18)), "signed_product": Out(signed(36)),
                 "c": In(unsigned(18)), "d": In(unsigned(18)), "unsigned_product": Out(unsigned(36))}
        for width, depth in self._shapes:
            ports.update({f"w{width}_en": In(1), f"w{width}_addr": In(range(depth)),
                          f"w{width}_data": In(width), f"r{width}_addr": In(range(depth)),
                          f"r{width}_data": Out(width)})
        for width, depth in self._roms:
            ports.update({f"rom{width}_addr": In(range(depth)), f"rom{width}_data": Out(width)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for width, depth in self._shapes:
            m.submodules[f"words{width}"] = words = memory.Memory(shape=width, depth=depth,
                                                                  init=initial_words(width, depth))
            write, read = words.write_port(), words.read_port()
            port = memory_ports(self, width)
            m.d.comb += [write.en.eq(port["w_en"]), write.addr.eq(port["w_addr"]),
                         write.data.eq(port["w_data"]), read.addr.eq(port["r_addr"]),
                         port["r_data"].eq(read.data)]
        for width, depth in self._roms:
            m.submodules[f"rom{width}"] = rom = memory.Memory(shape=width, depth=depth,
                                                             init=rom_words(width, depth))
            read = rom.read_port()
            address, data = rom_ports(self, width)
            m.d.comb += [read.addr.eq(address), data.eq(read.data)]
        m.d.sync += [self.signed_product.eq(self.a * self.b), self.unsigned_product.eq(self.c * self.d)]
        return m


class MemoryStimulus:
    """Random writes and reads of one of the probe's memories, and the word each read must give."""

    def __init__(self, dut, width: int, depth: int, rng: random.Random):
        self.width, self.depth, self.rng = width, depth, rng
        self.w_en, self.w_addr, self.w_data, self.r_addr, self.r_data = memory_ports(dut, width).values()
        self.words = initial_words(width, depth)

    def drive(self) -> int:
        """Set this cycle's ports; the word the read will give."""
        rng = self.rng
        # a few addresses often (reads of fresh writes), any address sometimes
        w_addr = rng.randrange(self.depth) if rng.random() < 0.5 else rng.randrange(4)
        r_addr = w_addr if rng.random() < 0.2 else rng.randrange(self.depth)
        w_en, w_data = rng.random() < 0.3, rng.randrange(1 << self.width)
        self.w_en.value, self.w_addr.value, self.w_data.value = int(w_en), w_addr, w_data
        self.r_addr.value = r_addr
        expected = self.words[r_addr]
        if w_en:
            self.words[w_addr] = w_data
        return expected


@cocotb.test()
async def random_words_and_products(dut):
    params = json.loads(os.environ["TB_PARAMS"])
    shapes, roms = params["shapes"], params.get("roms", [])
    rng = random.Random(cocotb.RANDOM_SEED)
    dut._log.info(f"seed {cocotb.RANDOM_SEED}")
    memories = [MemoryStimulus(dut, width, depth, rng) for width, depth in shapes]
    rom_reads = [(*rom_ports(dut, width), depth, rom_words(width, depth)) for width, depth in roms]
    for name in ("a", "b", "c", "d"):
        getattr(dut, name).value = 0
    for address, *_ in rom_reads:
        address.value = 0
    for stimulus in memories:
        for port in (stimulus.w_en, stimulus.w_addr, stimulus.w_data, stimulus.r_addr):
            port.value = 0
    Clock(dut.clk, 10, unit="ns").start()
    await reset(dut)
    expected = None
    for cycle in range(CYCLES):
        words = [stimulus.drive() for stimulus in memories]
        addresses = [rng.randrange(depth) for _, _, depth, _ in rom_reads]
        for (address, *_), at in zip(rom_reads, addresses):
            address.value = at
        a, b = rng.randint(-(1 << 17), (1 << 17) - 1), rng.randint(-(1 << 17), (1 << 17) - 1)
        c, d = rng.randrange(1 << 18), rng.randrange(1 << 18)
        dut.a.value, dut.b.value, dut.c.value, dut.d.value = a, b, c, d
        await RisingEdge(dut.clk)
        if expected is not None:
            got = ([int(stimulus.r_data.value) for stimulus in memories],
                   [int(data.value) for _, data, _, _ in rom_reads],
                   dut.signed_product.value.to_signed(), int(dut.unsigned_product.value))
            assert got == expected, f"cycle {cycle} (seed {cocotb.RANDOM_SEED}): {got} != {expected}"
        expected = (words, [contents[at] for (*_, contents), at in zip(rom_reads, addresses)], a * b, c * d)
