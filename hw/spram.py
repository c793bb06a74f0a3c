"""The iCE40 UP5K's single-port RAM (``SB_SPRAM256KA``: 16K × 16 bits, four on the chip) as a
RAM of any width up to 16K words deep: one primitive per 16 bits of width, side by side.

The bitstream cannot initialise SPRAM, and yosys does not infer it from an Amaranth ``Memory``
(which always carries an initial value), so it is instantiated. One port: ``addr`` for both;
``write_en`` writes ``write_data``; ``read_en`` (without ``write_en``) reads ``read_data`` one
cycle later; otherwise ``read_data`` holds, as the primitive's output does.

Simulation: ``sim/SB_SPRAM256KA.v`` models the primitive for Verilator and Icarus.
"""

from amaranth import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import check_integers

SPRAM_WIDTH = 16
SPRAM_DEPTH = 16384


class Ice40Spram(wiring.Component):
    """A RAM of up to 16K words of any width on the iCE40 UP5K's SPRAM primitives (one per 16
    bits of width), a behavioural memory without a platform; reads have one cycle of latency."""

    def __init__(self, *, width: int, depth: int):
        check_integers((("width", width, 1, 4 * SPRAM_WIDTH), ("depth", depth, 1, SPRAM_DEPTH)))
        self._width, self._depth = width, depth
        super().__init__({"addr": In(range(depth)), "write_data": In(width), "write_en": In(1),
                          "read_en": In(1), "read_data": Out(width)})

    blocks = property(lambda self: -(-self._width // SPRAM_WIDTH))

    def elaborate(self, platform):
        m = Module()
        for block in range(self.blocks):
            low = block * SPRAM_WIDTH
            high = min(low + SPRAM_WIDTH, self._width)
            data_in, data_out = Signal(SPRAM_WIDTH, name=f"data_in{block}"), Signal(
                SPRAM_WIDTH, name=f"data_out{block}")
            m.d.comb += [data_in.eq(self.write_data[low:high]),
                         self.read_data[low:high].eq(data_out)]
            m.submodules[f"spram{block}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr, i_DATAIN=data_in, i_MASKWREN=0b1111, i_WREN=self.write_en,
                i_CHIPSELECT=self.write_en | self.read_en, i_CLOCK=ClockSignal(),
                i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=data_out)
        return m
