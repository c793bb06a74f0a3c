"""Integer vector times a scale into a fixed-point format, plus an addend, saturated:
``saturate(addend + apply_scale(x, scale, frac), out_bits)`` (docs/numerics.md §3, §4).

This is every place the integer model leaves the accumulator domain for the residual stream: the
embedding row (``apply_scale(codes, row scale, 16)``, addend 0) and the o_proj / down_proj outputs
added into the residual (``H ← saturate32(H + apply_scale(acc, D·γ, 16))``).

Per lane: ``x · mant`` (one ``width``×16 multiply), shifted right by ``−(exp + frac)`` with round half
up, or left (a left shift of more than ``out_bits + 1`` bits is clamped there: a nonzero product then
saturates either way), then added to ``addend`` and saturated to ``out_bits`` signed bits. The
scaled product is held saturated to ``out_bits + 1`` bits (beyond ±2^out_bits the sum with any
``addend`` saturates the same way), so the left shift, the add and both saturations are
``out_bits`` wide, not product-plus-shift wide, and saturation is a check of top bits, not a
comparator.
A three-stage pipeline, one beat per cycle: **latency** 3 cycles from a beat's transfer in to the
first cycle its result is offered; ``o`` backpressure stalls all stages. ``scale`` must hold while
its beats are in flight.
"""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import RES_BITS, RES_FRAC, SCALE_BITS, SCALE_EXP_BITS

from .arith import bit_length, check_integers, rounded_right_shift
from .scale_unit import scale_layout


class Dequantizer(wiring.Component):
    """``saturate(addend + apply_scale(x, scale, frac), out_bits)`` per lane, one beat a cycle;
    :attr:`latency` cycles from a beat in to its result offered.

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
    """

    @staticmethod
    def latency_of() -> int:
        """Cycles from a beat's transfer in to the first cycle its result is offered."""
        return 3

    latency = property(lambda self: self.latency_of())

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
        # The scaled product is kept saturated to out_bits + 1 signed bits: beyond ±2^out_bits the
        # sum with any out_bits addend saturates the same way, so nothing wider is ever needed.
        scaled_bits = out_bits + 1
        scaled_max = (1 << (scaled_bits - 1)) - 1

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
        scaled = [Signal(signed(scaled_bits), name=f"scaled{lane}") for lane in range(lanes)]
        addend2 = [Signal(signed(out_bits), name=f"addend2_{lane}") for lane in range(lanes)]

        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.i.valid), s1_last.eq(self.i.payload.last),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last),
                         self.o.valid.eq(s2_valid), self.o.payload.last.eq(s2_last)]
            for lane in range(lanes):
                p = product[lane]
                m.d.sync += [p.eq(self.i.payload.data[lane] * self.scale.mant),
                             addend1[lane].eq(self.i.payload.addend[lane]),
                             addend2[lane].eq(addend1[lane])]
                # Right: the rounded value, saturated where its top bits are not all sign bits.
                rounded = rounded_right_shift(m, p, shift, f"rounded{lane}")
                right_fits = fits_signed(rounded, scaled_bits)
                # Left: p << left fits iff p is 0 or its significant bits (those below its sign)
                # and the shift together stay within out_bits; only the low scaled_bits are shifted.
                significant = bit_length(m, Mux(p < 0, ~p, p)[:product_bits - 1], f"significant{lane}")
                left_fits = (p == 0) | (significant + left <= out_bits)
                fits = Mux(shift > 0, right_fits, left_fits)
                value = Signal(signed(scaled_bits), name=f"value{lane}")      # the low bits
                m.d.comb += value.eq(Mux(shift > 0, rounded, p << left))
                m.d.sync += scaled[lane].eq(Mux(fits, value, Mux(p < 0, -scaled_max - 1, scaled_max)))
                total = Signal(signed(scaled_bits + 1), name=f"total{lane}")
                m.d.comb += total.eq(scaled[lane] + addend2[lane])
                m.d.sync += self.o.payload.data[lane].eq(saturate(total, out_bits))
        return m


def fits_signed(value, bits: int):
    """``value`` (signed) fits ``bits`` signed bits: its bits from ``bits − 1`` up are all equal."""
    top = value[bits - 1:]
    return (top == 0) | (top == (1 << len(top)) - 1)


def saturate(value, bits: int):
    """``value`` (signed) clamped to ``bits`` signed bits, by its top bits rather than comparators."""
    limit = (1 << (bits - 1)) - 1
    return Mux(fits_signed(value, bits), value, Mux(value[-1], -limit - 1, limit))
