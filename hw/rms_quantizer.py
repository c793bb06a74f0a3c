"""RMSNorm folded into the int8 absmax quantizer, exactly ``model.integer.rms_quantize``
(docs/numerics.md §4).

A token ``x`` (integers whose real value is ``x · x_scale``) arrives on ``i`` as beats of ``lanes``
signed ``width``-bit values, ``last`` on its final beat. Then:

1. **Load**: the token is stored while ``max|x|`` is tracked; ``e = max(0, bitlen(max|x|) − 17)``.
2. **Feed**: the token is read back with its gains (``gain``: a read port on the engine's gain memory,
   address = beat index, one cycle read latency), ``x_n = truncate_magnitude(x, e)`` and
   ``u = x_n ⊙ G`` go to an :class:`~hw.quantizer.AbsmaxQuantizer` one beat per cycle, while
   ``S = Σ x_n²`` and ``m = max|u|`` accumulate.
3. **Scale**: a :class:`~hw.scale_unit.ScaleUnit` runs the ten-command program :data:`PROGRAM`
   for ``D = m·2^(e − gain_exp)·x_scale · rsqrt(S·2^(2e)·inv_len·x_scale² + eps) · (1/127)``
   (``D = 0`` when ``m = 0``), which goes out on ``scale`` (with ``invalid`` if an exponent left the
   range); meanwhile the codes leave the AbsmaxQuantizer on ``o``.

``x_scale``, ``gain_exp``, ``inv_len`` (the scale 1/n) and ``eps`` are per-norm constants from the
sequencer; they must hold from a token's first beat until its ``scale`` is taken.

Cycles per token of ``b`` beats with no stalls: ``b`` (load) ``+ b + 5`` (feed: read, normalize,
multiply; zero check) and then, in parallel, the AbsmaxQuantizer's ``latency + b`` for the codes
and :data:`PROGRAM`'s ``ScaleProgram.cycles`` for ``D`` (:meth:`cycles`). The next token is loaded
once ``D`` is taken.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import (ACT_BITS, GAIN_BITS, INV_ACT_MAX, NORM_BITS, NORM_MAX_BITLEN,
                            SCALE_EXP_BITS)

from .arith import bit_length, check_integers, magnitude, max_tree, read_pass, store_beat
from .quantizer import AbsmaxQuantizer
from .scale_unit import ScaleOp, ScaleProgram, ScaleUnit, scale_layout

# The dequant scale as ScaleUnit commands (hw.scale_unit.ScaleProgram): (result, op, a, b, integer).
# Operands name earlier results or the inputs x_scale, inv_len, eps, inv_act_max; FROM_INT's integer
# is sum_sq · 2^(2e) or peak · 2^(e - gain_exp).
PROGRAM = (
    ("square_sum", ScaleOp.FROM_INT, None, None, "sum_sq"),
    ("mean_sum", ScaleOp.MUL, "square_sum", "inv_len", None),
    ("x_scale_sq", ScaleOp.MUL, "x_scale", "x_scale", None),
    ("mean_square", ScaleOp.MUL, "mean_sum", "x_scale_sq", None),
    ("with_eps", ScaleOp.ADD, "mean_square", "eps", None),
    ("inv_rms", ScaleOp.RSQRT, "with_eps", None, None),
    ("peak_int", ScaleOp.FROM_INT, None, None, "peak"),
    ("peak", ScaleOp.MUL, "peak_int", "x_scale", None),
    ("peak_rms", ScaleOp.MUL, "peak", "inv_rms", None),
    ("dequant", ScaleOp.MUL, "peak_rms", "inv_act_max", None),
)


class RmsQuantizer(wiring.Component):
    """RMSNorm folded into the int8 absmax quantizer (``model.integer.rms_quantize``): codes of
    ``x ⊙ g`` and the dequantization scale ``D``; :meth:`cycles` from a token's first beat to ``D``.
    ``overflow`` is high from the end of a token longer than ``max_length`` (cut there) until the
    next starts.

    Parameters
    ----------
    width : int
        Signed input width (2 to 48 bits; 32 for the Q15.16 residual stream).
    lanes : int
        Elements per beat.
    max_length : int
        Longest token in elements (``ceil(max_length / lanes)`` beats are buffered).
    exp_bits : int
        Exponent width of the scales (ScaleUnit).
    """

    def __init__(self, *, width: int = 32, lanes: int = 1, max_length: int, exp_bits: int = SCALE_EXP_BITS):
        check_integers((("width", width), ("lanes", lanes), ("max_length", max_length)))
        if not 2 <= width <= 48:
            raise ValueError(f"width must be between 2 and 48 bits, not {width}")
        self._width, self._lanes = width, lanes
        self._depth = -(-max_length // lanes)
        self._sum_bits = 2 * NORM_MAX_BITLEN + max_length.bit_length()
        if self._sum_bits > 64:
            raise ValueError(f"max_length {max_length} is too long for a 64-bit sum of squares; "
                             f"at most {(1 << (64 - 2 * NORM_MAX_BITLEN)) - 1} would fit")
        scale = scale_layout(exp_bits)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(width), lanes), "last": 1}))),
            "gain": Out(memory.ReadPort.Signature(
                addr_width=max(1, (self._depth - 1).bit_length()),
                shape=data.ArrayLayout(signed(GAIN_BITS), lanes)).flip()),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(ACT_BITS), lanes), "last": 1}))),
            "scale": Out(stream.Signature(data.StructLayout({
                "mant": unsigned(16), "exp": signed(exp_bits), "invalid": 1}))),
            "x_scale": In(scale), "inv_len": In(scale), "eps": In(scale),
            "gain_exp": In(signed(exp_bits)),
            "overflow": Out(1),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)
    product_bits = NORM_BITS + GAIN_BITS - 1     # |x_n · G| < 2^17 · 2^15

    def cycles(self, beats: int) -> int:
        """Clock edges from a token's first input transfer to its ``scale`` being valid, no stalls."""
        return self.cycles_of(beats)

    @staticmethod
    def cycles_of(beats: int) -> int:
        """:meth:`cycles` without a unit (it does not depend on the widths)."""
        return 2 * beats + 5 + ScaleProgram.cycles(PROGRAM)

    def elaborate(self, platform):
        m = Module()
        width, lanes = self._width, self._lanes
        m.submodules.quantizer = quantizer = AbsmaxQuantizer(
            width=self.product_bits, lanes=lanes, max_length=self._depth * lanes)
        m.submodules.scale_unit = unit = ScaleUnit(exp_bits=len(self.gain_exp),
                                                   int_bits=max(self._sum_bits, self.product_bits))
        m.submodules.buffer = buffer = memory.Memory(
            shape=data.ArrayLayout(signed(width), lanes), depth=self._depth, init=[])
        wr, rd = buffer.write_port(), buffer.read_port()

        # Codes go straight out of the AbsmaxQuantizer (its peak is the m tracked here as well).
        m.d.comb += [self.o.payload.data.eq(quantizer.o.payload.data),
                     self.o.payload.last.eq(quantizer.o.payload.last),
                     self.o.valid.eq(quantizer.o.valid), quantizer.o.ready.eq(self.o.ready)]

        length = Signal(range(self._depth + 1))      # beats stored
        overflowed = Signal()
        x_peak = Signal(width)
        e = Signal(range(max(width - NORM_MAX_BITLEN, 0) + 1))
        sum_sq = Signal(self._sum_bits)
        u_peak = Signal(self.product_bits)

        # -- load ---------------------------------------------------------------------------
        bitlen = bit_length(m, x_peak, "bitlen")

        # -- feed: read (memory) -> normalize (register) -> multiply (register) -> quantizer -----
        # (normalizing and multiplying in one cycle after the block RAM's read was the SoC's
        # critical path: 21 MHz on the ECP5)
        advance = Signal()
        m.d.comb += advance.eq(~quantizer.i.valid | quantizer.i.ready)
        read_addr = Signal(range(self._depth + 1))
        issue = Signal()
        s1_valid, s1_last, s2_valid, s2_last = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [rd.addr.eq(read_addr), rd.en.eq(advance),
                     self.gain.addr.eq(read_addr), self.gain.en.eq(advance)]
        x_n = [Signal(signed(NORM_BITS), name=f"x_n{lane}") for lane in range(lanes)]
        gains = [Signal.like(self.gain.data[lane], name=f"gain{lane}") for lane in range(lanes)]
        u = [Signal(signed(self.product_bits + 1), name=f"u{lane}") for lane in range(lanes)]
        m.d.comb += [u[lane].eq(x_n[lane] * gains[lane]) for lane in range(lanes)]
        squares = sum(x_n[lane] * x_n[lane] for lane in range(lanes))
        beat_u_peak = max_tree(m, [magnitude(v)[:self.product_bits] for v in u], self.product_bits,
                               "beat_u_peak")

        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq(read_addr == length - 1),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last),
                         quantizer.i.valid.eq(s2_valid), quantizer.i.payload.last.eq(s2_last)]
            for lane in range(lanes):
                x = rd.data[lane]
                shifted = (magnitude(x) >> e)[:NORM_BITS]
                m.d.sync += [x_n[lane].eq(Mux(x < 0, -shifted, shifted)),
                             gains[lane].eq(self.gain.data[lane]),
                             quantizer.i.payload.data[lane].eq(u[lane])]
            with m.If(s2_valid):
                m.d.sync += sum_sq.eq(sum_sq + squares)
                with m.If(beat_u_peak > u_peak):
                    m.d.sync += u_peak.eq(beat_u_peak)

        # -- scale program --------------------------------------------------------------------
        scale = scale_layout(len(self.gain_exp))
        program = ScaleProgram(PROGRAM, len(self.gain_exp))
        sources = {"x_scale": self.x_scale, "inv_len": self.inv_len, "eps": self.eps,
                   "inv_act_max": scale.const({"mant": INV_ACT_MAX[0], "exp": INV_ACT_MAX[1]})}
        integers = {"sum_sq": (sum_sq, 2 * e), "peak": (u_peak, e - self.gain_exp)}
        dequant = program.results["dequant"]

        beat_peak = max_tree(m, [magnitude(v)[:width] for v in self.i.payload.data], width,
                             "beat_x_peak")
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    with m.If(length == 0):
                        m.d.sync += self.overflow.eq(0)
                    store_beat(m, wr, length, self._depth, self.i.payload.data, [(beat_peak, x_peak)],
                               overflowed)
                    with m.If(self.i.payload.last):
                        m.next = "SHIFT"
            with m.State("SHIFT"):
                m.d.sync += [e.eq(Mux(bitlen > NORM_MAX_BITLEN, bitlen - NORM_MAX_BITLEN, 0)),
                             read_addr.eq(0), sum_sq.eq(0), u_peak.eq(0),
                             self.overflow.eq(overflowed)]
                m.next = "FEED"
            with m.State("FEED"):
                with m.If(read_pass(m, issue, read_addr, length, advance, (s1_valid, s2_valid))):
                    m.d.sync += program.start()
                    m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(u_peak == 0):
                    m.next = "ZERO"
                with m.Else():
                    m.next = "ISSUE"
            program.states(m, unit, sources, integers, "ISSUE", "RESULT", "DONE")
            with m.State("ZERO"):
                m.d.sync += [dequant.eq(0), program.invalid.eq(0)]
                m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.scale.valid.eq(1),
                             self.scale.payload.mant.eq(dequant.mant),
                             self.scale.payload.exp.eq(dequant.exp),
                             self.scale.payload.invalid.eq(program.invalid)]
                with m.If(self.scale.ready):
                    m.d.sync += [length.eq(0), x_peak.eq(0), overflowed.eq(0)]
                    m.next = "LOAD"
        return m
