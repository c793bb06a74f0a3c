"""Per-head int8 quantization of q, k or v, exactly ``model.integer.quantize_heads``
(docs/numerics.md §6): each head's accumulators (real value ``acc · acc_scale``) become int8 codes
(:class:`~hw.quantizer.AbsmaxQuantizer`) and one scale
``(scale_from_int(m, 0) · acc_scale) · (1/127)`` with ``m`` the head's ``max|acc|``, made by a
pipeline of its own while the codes stream out: ``scale_from_int`` (the peak's bit length, its top
17 bits, the rounding) and two :class:`~hw.scale_unit.NormalizedScaleMultiplier` products.

A head arrives on ``i`` (``lanes`` values per beat, ``last`` on its final beat); its codes leave on
``o`` (``last`` likewise) and its scale on ``scale``. Each AbsmaxQuantizer has two banks: the next
head is taken while one is divided and its codes leave. With ``quantizers=2`` two of them take the
heads in turn, so one divides a head while the other's codes leave and a head a beat a cycle keeps
both sides busy. A head's first code beat is held until its peak is latched for the scale, which
happens once the previous head's scale is taken. ``acc_scale`` must hold from a head's first beat
until its scale is out, and be normalized (mantissa in [2^15, 2^16)) or zero, as every scale the
engine makes is; a product out of the exponent's range, or of an unnormalized ``acc_scale``, comes
out ``invalid``.
"""

from amaranth import Const, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS, INV_ACT_MAX, SCALE_BITS, SCALE_EXP_BITS

from .arith import check_integers
from .quantizer import MAX_LANES, AbsmaxQuantizer
from .scale_unit import NormalizedScaleMultiplier, from_int_stages, scale_layout

QUANTIZERS = (1, 2)


class HeadQuantizer(wiring.Component):
    """Per-head int8 codes and scale of q, k or v (``model.integer.quantize_heads``): one or two
    AbsmaxQuantizers taking heads in turn and a pipelined scale; the first code :attr:`latency`
    cycles after a head's last beat, its scale :meth:`scale_cycles` after that.

    Parameters
    ----------
    width : int
        Signed width of the accumulators (2 to 48).
    lanes : int
        Elements per beat (1 to 64).
    head_dim : int
        Elements per head.
    exp_bits : int
        Exponent width of the scales.
    quantizers : int
        AbsmaxQuantizers taking heads in turn (1 or 2).
    """

    def __init__(self, *, width: int, lanes: int = 1, head_dim: int, exp_bits: int = SCALE_EXP_BITS,
                 quantizers: int = 1):
        check_integers((("width", width, 2, 48), ("lanes", lanes, 1, MAX_LANES),
                        ("head_dim", head_dim, 1, 1 << 16)))
        if quantizers not in QUANTIZERS:
            raise ValueError(f"quantizers must be one of {QUANTIZERS}, not {quantizers!r}")
        self._width, self._lanes, self._head_dim, self._quantizers = width, lanes, head_dim, quantizers
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(width), lanes), "last": 1}))),
            "acc_scale": In(scale_layout(exp_bits)),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(ACT_BITS), lanes), "last": 1}))),
            "scale": Out(stream.Signature(data.StructLayout({
                "mant": unsigned(SCALE_BITS), "exp": signed(exp_bits), "invalid": 1}))),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    head_dim = property(lambda self: self._head_dim)
    quantizers = property(lambda self: self._quantizers)

    @staticmethod
    def latency_of(lanes: int) -> int:
        """Cycles from a head's last input beat to its first code offered at ``lanes`` lanes, no
        stalls: the AbsmaxQuantizer's latency and one to latch the head's peak for the scale."""
        return AbsmaxQuantizer.latency_of(lanes) + 1

    latency = property(lambda self: self.latency_of(self._lanes))

    def scale_cycles(self) -> int:
        """Cycles from a head's peak latched (its first code offered) to its scale valid."""
        return self.scale_cycles_of()

    @staticmethod
    def scale_cycles_of() -> int:
        """:meth:`scale_cycles` without a unit: the bit length, the top bits, the rounding, two
        products."""
        return 3 + 2 * NormalizedScaleMultiplier.latency_of()

    def elaborate(self, platform):
        m = Module()
        exp_bits = len(self.acc_scale.exp)
        quantizers = [AbsmaxQuantizer(width=self._width, lanes=self._lanes, max_length=self._head_dim,
                                      banks=2) for _ in range(self._quantizers)]
        for n, quantizer in enumerate(quantizers):
            m.submodules[f"quantizer{n}"] = quantizer

        # Heads in turn: ``into`` takes the next input head, ``out_of`` offers the next codes.
        into, out_of = Signal(range(self._quantizers)), Signal(range(self._quantizers))
        codes = stream.Signature(quantizers[0].o.payload.shape()).flip().create()
        for n, quantizer in enumerate(quantizers):
            m.d.comb += [quantizer.i.payload.eq(self.i.payload),
                         quantizer.i.valid.eq(self.i.valid & (into == n))]
            with m.If(out_of == n):
                m.d.comb += [codes.payload.eq(quantizer.o.payload), codes.valid.eq(quantizer.o.valid),
                             quantizer.o.ready.eq(codes.ready)]
            with m.If(into == n):
                m.d.comb += self.i.ready.eq(quantizer.i.ready)
        if self._quantizers > 1:
            with m.If(self.i.valid & self.i.ready & self.i.payload.last):
                m.d.sync += into.eq(into + 1)
            with m.If(codes.valid & codes.ready & codes.payload.last):
                m.d.sync += out_of.eq(out_of + 1)

        first = Signal(init=1)          # the next code beat starts a head
        latched = Signal()              # that head's peak is in the scale pipeline
        pending = Signal()              # a scale made or being made, not yet taken
        hold = first & ~latched
        m.d.comb += [self.o.payload.data.eq(codes.payload.data), self.o.payload.last.eq(codes.payload.last),
                     self.o.valid.eq(codes.valid & ~hold), codes.ready.eq(self.o.ready & ~hold)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += first.eq(self.o.payload.last)
            with m.If(first):
                m.d.sync += latched.eq(0)

        # -- the scale: scale_from_int(peak, 0), then · acc_scale, then · (1/127) ----------------
        start = codes.valid & hold & ~pending
        with m.If(start):
            m.d.sync += [latched.eq(1), pending.eq(1)]
        with m.If(self.scale.valid & self.scale.ready):
            m.d.sync += pending.eq(0)
        # 1: the peak and its bit length L (exp = L − 16)
        peak, peak_valid = Signal(self._width), Signal()
        m.d.sync += [peak.eq(codes.payload.peak), peak_valid.eq(start)]
        # 2: the top 17 bits, the exponent L − 16; 3: rounded to 16 bits (hw.scale_unit.from_int_stages)
        peak_scale, _, peak_scale_valid = from_int_stages(m, peak, peak_valid, Const(0, 1), exp_bits,
                                                          "peak_scale")
        # 4, 5: · acc_scale; 6, 7: · (1/127)
        m.submodules.acc_mul = acc_mul = NormalizedScaleMultiplier(exp_bits)
        m.submodules.inv_mul = inv_mul = NormalizedScaleMultiplier(exp_bits)
        scaled = Signal(scale_layout(exp_bits))
        m.d.comb += [acc_mul.i.a.eq(peak_scale), acc_mul.i.b.eq(self.acc_scale),
                     acc_mul.i.valid.eq(peak_scale_valid),
                     scaled.mant.eq(acc_mul.o.mant), scaled.exp.eq(acc_mul.o.exp),
                     inv_mul.i.a.eq(scaled),
                     inv_mul.i.b.eq(scale_layout(exp_bits).const({"mant": INV_ACT_MAX[0],
                                                                  "exp": INV_ACT_MAX[1]})),
                     inv_mul.i.valid.eq(acc_mul.o.valid)]
        acc_invalid = Signal()
        with m.If(acc_mul.o.valid):
            m.d.sync += acc_invalid.eq(acc_mul.o.invalid)
        with m.If(inv_mul.o.valid & ~self.scale.valid):     # (one head's at a time: ``pending``)
            m.d.sync += [self.scale.valid.eq(1), self.scale.payload.mant.eq(inv_mul.o.mant),
                         self.scale.payload.exp.eq(inv_mul.o.exp),
                         self.scale.payload.invalid.eq(inv_mul.o.invalid | acc_invalid)]
        with m.Elif(self.scale.valid & self.scale.ready):
            m.d.sync += self.scale.valid.eq(0)
        return m
