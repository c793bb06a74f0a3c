"""Width converters between streams of vectors: :class:`Packer` gathers ``ratio`` beats of ``n``
elements into one of ``n·ratio``; :class:`Unpacker` splits one beat of ``n·ratio`` into ``ratio`` of
``n``. Both are combinational on the data path (no added latency): the engine uses them between
blocks of different lane counts (matmul results a word of ``drain`` into the head quantizer's or
the vector lanes; codes into the array's ``simd``-wide words; the AttentionHead's accumulator words
into its ``out_lanes``).
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


class Packer(wiring.Component):
    """``ratio`` beats of ``n`` elements into one of ``n·ratio`` (``last`` from the final beat).

    The first ``ratio − 1`` beats wait in registers; the output is offered with the final beat,
    combinationally (no added latency). A vector must be a whole number of output beats.
    """

    def __init__(self, shape, n: int, ratio: int):
        self._shape, self._n, self._ratio = shape, n, ratio
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(shape, n), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(shape, n * ratio), "last": 1}))),
        })
        # the beats held and their count (attributes for the proofs: tests/hw/test_formal.py)
        self.held = [Signal(data.ArrayLayout(shape, n), name=f"held{b}") for b in range(ratio - 1)]
        self.count = Signal(range(ratio))

    def elaborate(self, platform):
        m = Module()
        n, ratio = self._n, self._ratio
        if ratio == 1:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        held, count = self.held, self.count
        final = count == ratio - 1
        m.d.comb += [self.o.valid.eq(self.i.valid & final),
                     self.i.ready.eq(~final | self.o.ready),
                     self.o.payload.last.eq(self.i.payload.last)]
        for b in range(ratio):
            for e in range(n):
                source = self.i.payload.data[e] if b == ratio - 1 else held[b][e]
                m.d.comb += self.o.payload.data[b * n + e].eq(source)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(Mux(final, 0, count + 1))
            with m.Switch(count):
                for b in range(ratio - 1):
                    with m.Case(b):
                        m.d.sync += held[b].eq(self.i.payload.data)
        return m


class Unpacker(wiring.Component):
    """One beat of ``n·ratio`` elements out as ``ratio`` beats of ``n`` (``last`` on the final one
    of a final beat). Combinational: the input beat is taken with its last part."""

    def __init__(self, shape, n: int, ratio: int):
        self._shape, self._n, self._ratio = shape, n, ratio
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(shape, n * ratio), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(shape, n), "last": 1}))),
        })
        # the parts of the input beat given so far (an attribute for the proofs: tests/hw/test_formal.py)
        self.count = Signal(range(ratio))

    def elaborate(self, platform):
        m = Module()
        n, ratio = self._n, self._ratio
        count = self.count
        final = count == ratio - 1
        m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready & final),
                     self.o.payload.last.eq(self.i.payload.last & final)]
        with m.Switch(count):
            for b in range(ratio):
                with m.Case(b):
                    m.d.comb += [self.o.payload.data[e].eq(self.i.payload.data[b * n + e])
                                 for e in range(n)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += count.eq(Mux(final, 0, count + 1))
        return m
