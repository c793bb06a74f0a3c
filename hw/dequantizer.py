"""Integer vector times a scale into a fixed-point format, plus an addend, saturated:
``saturate(addend + apply_scale(x, scale, frac), out_bits)`` (docs/numerics.md §3, §4).

This is every place the integer model leaves the accumulator domain for the residual stream: the
embedding row (``apply_scale(codes, row scale, 16)``, addend 0) and the o_proj / down_proj outputs
added into the residual (``H ← saturate32(H + apply_scale(acc, D·γ, 16))``).

Per lane, with ``n = −(exp + frac)`` and ``p = x · mant``:
``v = p · 2^(1 − n)`` (``p >> (n − 1)`` for ``n ≥ 1``, ``p << (1 − n)`` otherwise), so that
``rshift_round(p, n) = (v + 1) >> 1`` either way and the result is
``saturate((v + 2·addend + 1) >> 1, out_bits)``: the rounding increment is the carry into the add.
``v`` is read from one window of ``out_bits + 2`` bits into ``p · 2^(out_bits + 2)``: one barrel
shifter for both directions, moving by even amounts, the multiplier taking the offset's low bit
(``x · 2·mant`` or ``x · mant``, one ``width``×17 multiply, ``2·mant`` shared by the lanes). A
``v`` that does not fit the window rounds to a magnitude of at least ``2^out_bits``, which
saturates toward ``p``'s sign with any ``addend``: a flag, set when the product's bits above the
window are not all sign bits, a check against a mask that all lanes share. So the add and the
saturation are ``out_bits + 3`` bits wide, and saturation is a check of top bits.

Stages: (0) the beat and the scale's multiplier operand and shift, registered (every multiplier
operand comes from a register: the beat's source, an unpacker's mux or a block-RAM read, does not
share a cycle with the multiply); (1) the product, registered out of the multiplier, beside the
window's mask; (2) the window and the flag; (3) the add and the saturation. With ``units`` below
``lanes`` a beat goes through in ``lanes / units`` parts, ``units`` lanes a cycle (a multiplier
each), and its results are gathered into the output beat: one beat per ``lanes / units`` cycles,
taken with its last part. **Latency** 4 cycles from a beat's transfer in to the first cycle its
result is offered; ``o`` backpressure stalls all stages. Each beat carries its own scale, so beats
of different scales (the engine's sources: the embedding row's, the residual's ``D·γ``, an
attention head's row scale) follow each other with no gap.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import RES_BITS, RES_FRAC, SCALE_BITS, SCALE_EXP_BITS

from .arith import check_integers, divisors
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
    units : int
        Lanes computed a cycle (dividing ``lanes``; default all of them).
    """

    @staticmethod
    def latency_of() -> int:
        """Cycles from a beat's transfer in to the first cycle its result is offered."""
        return 4

    latency = property(lambda self: self.latency_of())

    def __init__(self, *, width: int, lanes: int = 1, frac: int = RES_FRAC, out_bits: int = RES_BITS,
                 exp_bits: int = SCALE_EXP_BITS, units: int | None = None):
        units = lanes if units is None else units
        check_integers((("width", width, 2, 48), ("lanes", lanes, 1, 1024),
                        ("frac", frac, 0, 32), ("out_bits", out_bits, 2, 48), ("units", units, 1, 1024)))
        if lanes % units:
            raise ValueError(f"units must divide lanes {lanes}, not {units}; "
                             f"{divisors(lanes)} would")
        self._width, self._lanes, self._frac, self._out_bits = width, lanes, frac, out_bits
        self._units = units
        super().__init__({
            "i": In(stream.Signature(self.input_layout_of(width, lanes, out_bits, exp_bits))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(out_bits), lanes), "last": 1}))),
        })
        # each stage's valid and a-beat's-last-part flags (for the proofs: tests/hw/test_formal.py)
        self.stages = [(Signal(name=f"s{k}_valid"), Signal(name=f"s{k}_final")) for k in range(3)]

    @staticmethod
    def input_layout_of(width: int, lanes: int, out_bits: int = RES_BITS,
                        exp_bits: int = SCALE_EXP_BITS) -> data.StructLayout:
        """``i``'s payload: ``lanes`` values, ``lanes`` addends, the beat's scale, ``last``."""
        return data.StructLayout({"data": data.ArrayLayout(signed(width), lanes),
                                  "addend": data.ArrayLayout(signed(out_bits), lanes),
                                  "scale": scale_layout(exp_bits), "last": 1})

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    frac = property(lambda self: self._frac)
    out_bits = property(lambda self: self._out_bits)
    units = property(lambda self: self._units)
    parts = property(lambda self: self._lanes // self._units)     # cycles a beat takes

    def elaborate(self, platform):
        m = Module()
        out_bits = self._out_bits
        product_bits = self._width + SCALE_BITS + 1       # x · mant, doubled for an even r
        window_bits = out_bits + 2
        # v's window starts at bit r = out_bits + 1 + n of x · mant · 2^(out_bits + 2). The
        # multiplier takes r's low bit (mant doubled for an even r), the barrel shifter the rest:
        # the window starts at bit 2·half of 2^(1 − r mod 2) · x · mant · 2^(out_bits + 1). Past
        # half_max every window holds only sign bits. For r < 0 the window at 0 overflows for every
        # product but 0 and −1, whose v (0, −2^(out_bits + 1)) saturates as the true one does.
        half_max = (window_bits + product_bits - 1) // 2
        scale = self.i.payload.scale
        offset_next = Signal(signed(len(scale.exp) + 2))
        m.d.comb += offset_next.eq(out_bits + 1 - self._frac - scale.exp)
        half_next = Signal(range(half_max + 1))
        m.d.comb += half_next.eq(Mux(offset_next < 0, 0, Mux(offset_next >> 1 > half_max, half_max,
                                                                offset_next >> 1)))
        mant_next = Mux(offset_next[0], scale.mant, scale.mant << 1)
        mant, half, half1 = Signal(SCALE_BITS + 1), Signal.like(half_next), Signal.like(half_next)
        # v fits its window iff the product's bits from 2·half up are all sign bits: their mask.
        above = Signal(product_bits)

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        # the beat's parts, ``units`` lanes each, in turn; the beat is taken with its last
        units, parts = self._units, self.parts
        part = Signal(range(parts))
        final = part == parts - 1
        m.d.comb += self.i.ready.eq(advance & final)
        with m.If(advance & self.i.valid):
            m.d.sync += part.eq(Mux(final, 0, part + 1))

        (s0_valid, s0_final), (s1_valid, s1_final), (s2_valid, s2_final) = self.stages
        s0_last, s1_last, s2_last = Signal(), Signal(), Signal()
        gathered = Signal(range(parts))                  # the output's parts gathered so far
        held = [[Signal(signed(out_bits), name=f"held{p}_{u}") for u in range(units)]
                for p in range(parts - 1)]
        limit = (1 << (out_bits - 1)) - 1
        with m.If(advance):
            m.d.sync += [s0_valid.eq(self.i.valid), s0_last.eq(self.i.payload.last), s0_final.eq(final),
                         s1_valid.eq(s0_valid), s1_last.eq(s0_last), s1_final.eq(s0_final),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last), s2_final.eq(s1_final),
                         self.o.valid.eq(s2_valid & s2_final), self.o.payload.last.eq(s2_last),
                         mant.eq(mant_next), half.eq(half_next), half1.eq(half),
                         above.eq(Const(-1, len(above)) << Cat(Const(0, 1), half))]
            with m.If(s2_valid):
                m.d.sync += gathered.eq(Mux(s2_final, 0, gathered + 1))
            for lane in range(units):
                # (the lanes' registers are not reset: the stages' flags are)
                x = Signal(signed(self._width), name=f"x{lane}", reset_less=True)
                addend0 = Signal(signed(out_bits), name=f"addend0_{lane}", reset_less=True)
                for p in range(parts):
                    with m.If(part == p):
                        m.d.sync += [x.eq(self.i.payload.data[p * units + lane]),
                                     addend0.eq(self.i.payload.addend[p * units + lane])]

                product = Signal(signed(product_bits), name=f"product{lane}", reset_less=True)
                addend1 = Signal(signed(out_bits), name=f"addend1_{lane}", reset_less=True)
                m.d.sync += [product.eq(x * mant), addend1.eq(addend0)]

                v = Signal(signed(window_bits), name=f"v{lane}", reset_less=True)
                overflow = Signal(name=f"overflow{lane}", reset_less=True)
                negative = Signal(name=f"negative{lane}", reset_less=True)
                addend2 = Signal(signed(out_bits), name=f"addend2_{lane}", reset_less=True)
                shifted = Cat(Const(0, window_bits - 1), product).as_signed() >> Cat(Const(0, 1), half1)
                not_sign = product.as_unsigned() ^ product[-1].replicate(product_bits)
                m.d.sync += [v.eq(shifted[:window_bits]), overflow.eq((not_sign & above).any()),
                             negative.eq(product[-1]), addend2.eq(addend1)]

                total = Signal(signed(window_bits + 1), name=f"total{lane}")
                m.d.comb += total.eq((v + Cat(Const(1, 1), addend2).as_signed()) >> 1)
                fits = ~overflow & fits_signed(total, out_bits)
                low = Mux(overflow, negative, total[-1])
                result = Mux(fits, total, Mux(low, -limit - 1, limit))
                # earlier parts wait in ``held``; the last part's results join them in ``o``
                for p in range(parts - 1):
                    with m.If(s2_valid & ~s2_final & (gathered == p)):
                        m.d.sync += held[p][lane].eq(result)
                with m.If(s2_valid & s2_final):
                    m.d.sync += self.o.payload.data[(parts - 1) * units + lane].eq(result)
                    m.d.sync += [self.o.payload.data[p * units + lane].eq(held[p][lane])
                                 for p in range(parts - 1)]
        return m


def fits_signed(value, bits: int):
    """``value`` (signed) fits ``bits`` signed bits: its bits from ``bits − 1`` up are all equal."""
    top = value[bits - 1:]
    return (top == 0) | (top == (1 << len(top)) - 1)

