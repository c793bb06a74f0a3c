"""Integer vector times a scale into a fixed-point format, plus an addend, saturated:
``saturate(addend + apply_scale(x, scale, frac), out_bits)`` (docs/numerics.md §3, §4).

This is every place the integer model leaves the accumulator domain for the residual stream: the
embedding row (``apply_scale(codes, row scale, 16)``, addend 0) and the o_proj / down_proj outputs
added into the residual (``H ← saturate32(H + apply_scale(acc, D·γ, 16))``).

Per lane: ``x · mant`` (one ``width``×16 multiply), shifted right by ``−(exp + frac)`` with round half
up, or left (a left shift of more than ``out_bits + 1`` bits is clamped there: a nonzero product then
saturates either way), then added to ``addend`` and saturated to ``out_bits`` signed bits.
A three-stage pipeline, one beat per cycle: **latency** 3 cycles from a beat's transfer in to the
first cycle its result is offered; ``o`` backpressure stalls all stages. ``scale`` must hold while
its beats are in flight.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import RES_BITS, RES_FRAC, SCALE_BITS, SCALE_EXP_BITS

from .arith import check_integers, rounded_right_shift
from .scale_unit import scale_layout


class Dequantizer(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    width : int
        Signed width of ``x`` (2 to 48 bits).
    lanes : int
        Elements per beat.
    frac : int
        Fractional bits of the result (16: the Q15.16 residual).
    out_bits : int
        Signed width of the result and of ``addend`` (2 to 48).
    exp_bits : int
        Exponent width of ``scale``.

    Members
    -------
    i : In(stream.Signature(StructLayout({"data": lanes × signed(width), "addend": lanes × signed(out_bits), "last": 1})))
    o : Out(stream.Signature(StructLayout({"data": lanes × signed(out_bits), "last": 1})))
    scale : In(scale layout)
    """

    latency = 3

    def __init__(self, *, width: int, lanes: int = 1, frac: int = RES_FRAC, out_bits: int = RES_BITS,
                 exp_bits: int = SCALE_EXP_BITS):
        check_integers((("width", width, 2, 48), ("lanes", lanes, 1, 1024),
                        ("frac", frac, 0, 32), ("out_bits", out_bits, 2, 48)))
        self._width, self._lanes, self._frac, self._out_bits = width, lanes, frac, out_bits
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(width), lanes),
                "addend": data.ArrayLayout(signed(out_bits), lanes), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(out_bits), lanes), "last": 1}))),
            "scale": In(scale_layout(exp_bits)),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    frac = property(lambda self: self._frac)
    out_bits = property(lambda self: self._out_bits)

    def elaborate(self, platform):
        m = Module()
        lanes, out_bits = self._lanes, self._out_bits
        product_bits = self._width + SCALE_BITS + 1
        left_max = out_bits + 1
        shifted_bits = product_bits + left_max + 1

        shift = Signal(signed(len(self.scale.exp) + 2))          # right shift -(exp + frac)
        m.d.comb += shift.eq(-(self.scale.exp + self._frac))
        left = Signal(range(left_max + 1))
        m.d.comb += left.eq(Mux(shift < -left_max, left_max, -shift))

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(advance)

        s1_valid, s1_last, s2_valid, s2_last = Signal(), Signal(), Signal(), Signal()
        product = [Signal(signed(product_bits), name=f"product{lane}") for lane in range(lanes)]
        addend1 = [Signal(signed(out_bits), name=f"addend1_{lane}") for lane in range(lanes)]
        scaled = [Signal(signed(shifted_bits), name=f"scaled{lane}") for lane in range(lanes)]
        addend2 = [Signal(signed(out_bits), name=f"addend2_{lane}") for lane in range(lanes)]
        limit = (1 << (out_bits - 1)) - 1

        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.i.valid), s1_last.eq(self.i.payload.last),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last),
                         self.o.valid.eq(s2_valid), self.o.payload.last.eq(s2_last)]
            for lane in range(lanes):
                m.d.sync += [product[lane].eq(self.i.payload.data[lane] * self.scale.mant),
                             addend1[lane].eq(self.i.payload.addend[lane]),
                             addend2[lane].eq(addend1[lane])]
                rounded = rounded_right_shift(m, product[lane], shift, f"rounded{lane}")
                m.d.sync += scaled[lane].eq(Mux(shift > 0, rounded, product[lane] << left))
                total = scaled[lane] + addend2[lane]
                m.d.sync += self.o.payload.data[lane].eq(
                    Mux(total > limit, limit, Mux(total < -limit - 1, -limit - 1, total)))
        return m
