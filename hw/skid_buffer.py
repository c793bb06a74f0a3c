"""A skid buffer: one stream stage that registers the payload *and* the ready signal, so neither the
data path nor the ready/valid handshake is combinational across it (the timing discipline at a
component boundary, docs/gateware.md).

Latency: one cycle (a beat taken at an edge is offered from the next). Throughput: one beat a
cycle. ``i.ready`` is a register: when ``o`` stalls, the beat already in flight waits in a second
register (the skid) and ``i.ready`` drops from the next cycle.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """One registered stage between ``i`` and ``o``, streams of ``shape`` (any Amaranth shape or
    layout). See the module docstring for latency and throughput."""

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})
        # the second register and its flag (attributes for the proofs: tests/hw/test_formal.py);
        # the payload registers are not reset (only the valid flags are), so the reset net does not
        # reach them across the die (the 85F's slowest path, 17.6 ns of routing into one)
        self.skid = Signal.like(self.i.payload, name="skid", reset_less=True)
        self.skid_valid = Signal()

    latency = 1

    def elaborate(self, platform):
        m = Module()
        skid, skid_valid = self.skid, self.skid_valid
        payload = Signal.like(self.o.payload, name="payload", reset_less=True)   # the output register
        m.d.comb += [self.i.ready.eq(~skid_valid), self.o.payload.eq(payload)]
        with m.If(~self.o.valid | self.o.ready):
            # the output register takes the skid's beat first, else the input's
            m.d.sync += [self.o.valid.eq(skid_valid | self.i.valid),
                         payload.eq(Mux(skid_valid, skid, self.i.payload)),
                         skid_valid.eq(0)]
        with m.Elif(~skid_valid):
            # (the skid loads while empty whether or not a beat is offered: its clock enable then
            # comes from registers and ``o.ready`` alone, not from the producer's valid logic)
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(self.i.valid)]
        return m
