"""RMSNorm folded into the int8 absmax quantizer, exactly ``model.integer.rms_quantize``
(docs/numerics.md §4).

A token ``x`` (integers whose real value is ``x · x_scale``) arrives on ``i`` as beats of ``lanes``
signed ``width``-bit values, ``last`` on its final beat. The buffer holds ``ratio`` beats a word,
and the feed and the codes run a word a cycle (``feed_lanes = lanes · ratio`` elements): the two
passes take ``ceil(b / ratio)`` cycles for a token of ``b`` beats. Then:

1. **Load**: each beat's magnitudes and signs are registered, then stored (in its part of a word)
   while their OR is tracked (its bit length is ``max|x|``'s); ``e = max(0, bitlen(max|x|) − 17)``.
2. **Feed**, twice: the token is read back a word a cycle with its gains (``gain``: a read port on
   the engine's gain memory, ``feed_lanes`` gains a word, address = word index, one cycle read
   latency) into registers, then
   ``|x_n| = |x| >> e`` and ``G`` negated where ``x < 0`` are registered, and ``u = x_n ⊙ G``
   (``|x_n|`` times the signed gain) goes to an :class:`~hw.quantizer.AbsmaxQuantizer` with no buffer
   of its own (``banks=0``) one beat per cycle from the product registers, through a skid buffer
   (:class:`~hw.skid_buffer.SkidBuffer`). The first pass is
   measured (its peak, while ``S = Σ |x_n|²`` accumulates from registered squares); the second
   follows it at once and waits in the feed until the AbsmaxQuantizer's reciprocal is ready, then is
   quantized on its way through. Replaying the token from this block's buffer saves the
   AbsmaxQuantizer a buffer of its own (as wide as ``u``). A token of ``b`` beats that is not a
   whole number of words ends in a word whose missing beats count as zeros: its last code beat
   ends in ``feed_lanes − lanes·(b mod ratio)`` zero codes.
3. **Scale**: ``D = m·2^(e − gain_exp)·x_scale · rsqrt(S·2^(2e)·inv_len·x_scale² + eps) · (1/127)``
   (``D = 0`` when ``m = 0``), from the first pass's end, goes out on ``scale`` (with ``invalid``
   if an exponent left the range): the :class:`~hw.scale_unit.ScaleUnit` makes S's scale
   (:data:`SUM_PROGRAM`) and, after two products, the sum with eps and its rsqrt
   (:data:`ROOT_PROGRAM`); the six products (:data:`PRODUCTS`) are this block's own, one at a time on
   a :class:`~hw.scale_unit.NormalizedScaleMultiplier` (``x_scale²`` during the first pass), and
   ``m``'s scale is made by :func:`~hw.scale_unit.from_int_stages` once ``m = max|u|`` is latched from
   the AbsmaxQuantizer's first code (its peak). The same operations in the same order as the
   model's: 92 cycles where the ten on the unit took 134. Meanwhile the codes leave the
   AbsmaxQuantizer on ``o``.

Every stage holds at most one carry chain (ECP5 timing discipline): the block RAM's read data and
the multipliers' operands and products are registered. The feed stalls on the skid buffer's
registered ready, not on the codes' ready through the AbsmaxQuantizer: its clock enable fans out
to every lane's registers and the memories' read enables, across the die (on the ULX3S-85F at two
beats a word, 60.9 MHz with the ready chain, the slowest path of the SoC).

``x_scale``, ``gain_exp``, ``inv_len`` (the scale 1/n) and ``eps`` are per-norm constants from the
sequencer; they must hold from a token's first beat until its ``scale`` is taken.

Cycles per token of ``b`` beats (``w = ceil(b / ratio)`` words) with no stalls: ``b + 1`` (load, the
last beat's store) ``+ w + 7`` (the first pass: read, register, normalize, multiply, skid, its
last product's transfer registered) and
then, in parallel, the AbsmaxQuantizer's ``latency + w`` for the codes (:meth:`codes_latency_of`
counts the skid too; the second pass) and :meth:`scale_cycles` for ``D`` (:meth:`cycles`). The
next token is loaded once ``D`` is taken and the second pass has been read (``DRAIN``; D is
usually the later).
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from model.numerics import ACT_BITS, GAIN_BITS, INV_ACT_MAX, NORM_BITS, NORM_MAX_BITLEN, SCALE_EXP_BITS

from .arith import (bit_length_tree, check_integers, or_all, register_sign_magnitude, sign_magnitude,
                    store_beat)
from .quantizer import MAX_LANES, AbsmaxQuantizer
from .scale_unit import (NormalizedScaleMultiplier, ScaleOp, ScaleProgram, from_int_stages, scale_layout,
                         scale_unit_members, scale_unit_of)
from .skid_buffer import SkidBuffer

# The dequant scale D (model.integer.rms_quantize), its ScaleUnit commands
# (hw.scale_unit.ScaleProgram: (result, op, a, b, integer)) and its products, each on this block's
# NormalizedScaleMultiplier (4 cycles where the unit's MUL takes 9): S's scale, FROM_INT of
# sum_sq · 2^(2e); then mean_sum = S · inv_len and mean_square = mean_sum · x_scale² (x_scale² made
# during the first pass); then the sum with eps and its rsqrt; then peak = scale_from_int(m,
# e − gain_exp) · x_scale (that scale made by from_int_stages once m is latched), peak_rms = peak ·
# inv_rms, D = peak_rms · (1/127). The same operations on the same operands as the model's, in
# the same order: only where they run differs.
SUM_PROGRAM = (("square_sum", ScaleOp.FROM_INT, None, None, "sum_sq"),)
ROOT_PROGRAM = (
    ("with_eps", ScaleOp.ADD, "mean_square", "eps", None),
    ("inv_rms", ScaleOp.RSQRT, "with_eps", None, None),
)
PRODUCTS = ("x_scale_sq", "mean_sum", "mean_square", "peak", "peak_rms", "dequant")   # (D: registered apart)
PRODUCT_CYCLES = 2 + NormalizedScaleMultiplier.latency_of()    # operands registered, product, taken

RATIOS = (1, 2, 4)        # input beats a buffer word (a power of two: a beat's part is length's low bits)


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
        Elements per input beat (1 to 64).
    ratio : int
        Input beats a buffer word: the passes and the codes run ``lanes · ratio`` elements a
        cycle (1, 2 or 4; at most 64 elements).
    max_length : int
        Longest token in elements (``ceil(max_length / (lanes · ratio))`` words are buffered).
    exp_bits : int
        Exponent width of the scales (ScaleUnit).
    shared_scale : bool
        Run the scale program on a :class:`~hw.scale_unit.SharedScaleUnit` through the
        ``scale_unit`` port instead of a ScaleUnit of its own.
    """

    def __init__(self, *, width: int = 32, lanes: int = 1, ratio: int = 1, max_length: int,
                 exp_bits: int = SCALE_EXP_BITS, shared_scale: bool = False):
        check_integers((("width", width), ("lanes", lanes, 1, MAX_LANES), ("max_length", max_length)))
        if not 2 <= width <= 48:
            raise ValueError(f"width must be between 2 and 48 bits, not {width}")
        if ratio not in RATIOS or lanes * ratio > MAX_LANES:
            fits = [r for r in RATIOS if lanes * r <= MAX_LANES]
            raise ValueError(f"ratio must be one of {fits} at {lanes} lanes (at most {MAX_LANES} "
                             f"elements a word), not {ratio!r}")
        self._width, self._lanes, self._ratio = width, lanes, ratio
        self._depth = -(-max_length // (lanes * ratio))
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
                shape=data.ArrayLayout(signed(GAIN_BITS), self.feed_lanes)).flip()),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(ACT_BITS), self.feed_lanes), "last": 1}))),
            "scale": Out(stream.Signature(data.StructLayout({
                "mant": unsigned(16), "exp": signed(exp_bits), "invalid": 1}))),
            "x_scale": In(scale), "inv_len": In(scale), "eps": In(scale),
            "gain_exp": In(signed(exp_bits)),
            "overflow": Out(1),
            **scale_unit_members(shared_scale, exp_bits, self.scale_int_bits),
        })
        # The AbsmaxQuantizer, and what ties the feed and the scale program to it (for the proofs:
        # tests/hw/test_formal.py): its first code still to come (``peak_pending``), the first pass
        # in it (``first_pass_taken`` a cycle, then ``second``), the read passes left to issue, the
        # feed's valid and ``last`` flags (read, register, normalize; the multiply's are the
        # AbsmaxQuantizer's ``i``), and ``fsm`` once elaborated (its ``state`` register and
        # ``encoding``).
        self.quantizer = AbsmaxQuantizer(width=self.product_bits, lanes=self.feed_lanes,
                                         max_length=self._depth * self.feed_lanes, banks=0)
        self.peak_pending, self.second = Signal(name="peak_pending"), Signal(name="second")
        self.first_pass_taken = Signal(name="first_pass_taken")   # its last beat taken, a cycle ago
        self.passes = Signal(range(3), name="passes")
        self.feed_valid = [Signal(name=f"s{n}_valid") for n in (1, 2, 3, 4)]
        self.feed_last = [Signal(name=f"s{n}_last") for n in (1, 2, 3, 4)]
        # the products' skid buffer into the AbsmaxQuantizer (the feed's last slots)
        self.feed_skid = SkidBuffer(self.quantizer.i.payload.shape())
        self.fsm = None

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    ratio = property(lambda self: self._ratio)
    feed_lanes = property(lambda self: self._lanes * self._ratio)   # elements a word (feed, codes)
    depth = property(lambda self: self._depth)                      # words
    product_bits = NORM_BITS + GAIN_BITS - 1     # |x_n · G| < 2^17 · 2^15
    scale_int_bits = property(lambda self: max(self._sum_bits, self.product_bits))   # FROM_INT's

    def cycles(self, beats: int) -> int:
        """Clock edges from a token's first input transfer to its ``scale`` being valid, no stalls."""
        return self.cycles_of(beats, self._ratio)

    @staticmethod
    def cycles_of(beats: int, ratio: int = 1) -> int:
        """:meth:`cycles` without a unit (it does not depend on the widths)."""
        return beats + 1 + -(-beats // ratio) + 6 + SkidBuffer.latency + RmsQuantizer.scale_cycles()

    @staticmethod
    def scale_cycles() -> int:
        """Clock edges from the first pass's end to ``scale`` valid: S's scale on the unit, two
        products, the sum and rsqrt on the unit, three products (the peak's scale made by then)."""
        return (ScaleProgram.cycles(SUM_PROGRAM) + 2 * PRODUCT_CYCLES + ScaleProgram.cycles(ROOT_PROGRAM)
                + 3 * PRODUCT_CYCLES)

    @staticmethod
    def codes_latency_of(feed_lanes: int) -> int:
        """Cycles from the first pass's last product registered to the first code (the second
        pass already waiting in the feed), at ``feed_lanes`` elements a word: the products' skid
        buffer and the AbsmaxQuantizer's latency."""
        return SkidBuffer.latency + AbsmaxQuantizer.latency_of(feed_lanes, banks=0)

    def elaborate(self, platform):
        m = Module()
        width, lanes, ratio, feed_lanes = self._width, self._lanes, self._ratio, self.feed_lanes
        m.submodules.quantizer = quantizer = self.quantizer
        unit = scale_unit_of(m, self, exp_bits=len(self.gain_exp), int_bits=self.scale_int_bits)
        entry = sign_magnitude(width)
        m.submodules.buffer = buffer = memory.Memory(
            shape=data.ArrayLayout(entry, feed_lanes), depth=self._depth, init=[])
        # a beat is written into its part of a word (an enable a beat: granularity in elements)
        wr = buffer.write_port(granularity=lanes if ratio > 1 else None)
        rd = buffer.read_port()

        # Codes go straight out of the AbsmaxQuantizer; its peak m is latched from its first code.
        m.d.comb += [self.o.payload.data.eq(quantizer.o.payload.data),
                     self.o.payload.last.eq(quantizer.o.payload.last),
                     self.o.valid.eq(quantizer.o.valid), quantizer.o.ready.eq(self.o.ready)]

        length = Signal(range(self._depth * ratio + 1))    # beats stored
        part_bits = exact_log2(ratio)
        last_word = Signal(range(self._depth))      # the token's last word (set for the feed)
        overflowed = Signal()
        x_bits = Signal(width)                       # OR of |x|: its bit length is max|x|'s
        e = Signal(range(max(width - NORM_MAX_BITLEN, 0) + 1))
        sum_sq = Signal(self._sum_bits)
        u_peak = Signal(self.product_bits)
        peak_pending = self.peak_pending             # u_peak is the next code's peak
        peak_zero = Signal()
        passes = self.passes                         # read passes of the token left to issue
        second = self.second                         # the first pass is in the AbsmaxQuantizer

        # -- load: magnitudes and signs (register), then the buffer write and OR of |x| ------------
        in_beat, in_valid = register_sign_magnitude(m, self.i, width, lanes)
        beat_bits = or_all(in_beat[lane].mag for lane in range(lanes))
        with m.If(in_valid):
            store_beat(m, wr, length, self._depth, in_beat, overflowed, parts=ratio)
            with m.If(length < self._depth * ratio):
                m.d.sync += x_bits.eq(x_bits | beat_bits)
        # e = max(0, bitlen(x) − 17) is the bit length of x's bits above the 17th: no compare and no
        # subtraction after the tree (they made the ULX3S-85F's slowest path, 16 ns, into e)
        e_next = bit_length_tree(m, x_bits[NORM_MAX_BITLEN:], "e_next")

        # -- feed: read (memory) -> register -> normalize -> multiply -> skid -> quantizer -------
        # Two passes over the token, back to back; the second stalls in the pipeline until the
        # AbsmaxQuantizer takes it. x_n · G is |x_n| times G negated where x < 0; S sums |x_n|² of
        # the first pass (a flag a stage says which pass a beat is of), products registered first.
        # The products go through a skid buffer, so the feed's stall (the clock enable of every
        # lane's registers and the memories' read enables) comes from two registers, not from
        # the codes' ready through the AbsmaxQuantizer.
        m.submodules.feed_skid = skid = self.feed_skid
        wiring.connect(m, skid.o, quantizer.i)
        advance = Signal()
        m.d.comb += advance.eq(~skid.i.valid | skid.i.ready)
        read_addr = Signal(range(self._depth))
        issue = Signal()
        m.d.comb += issue.eq(passes != 0)
        with m.If(advance & issue):
            with m.If(read_addr == last_word):
                m.d.sync += [read_addr.eq(0), passes.eq(passes - 1)]
            with m.Else():
                m.d.sync += read_addr.eq(read_addr + 1)
        # the first pass's last product taken, registered: the codes' ready through the
        # AbsmaxQuantizer into the scale program's start was the ULX3S-85F's slowest path
        first_pass_in = self.first_pass_taken
        m.d.sync += first_pass_in.eq(quantizer.i.valid & quantizer.i.ready & quantizer.i.payload.last
                                     & ~second)
        (s1_valid, s2_valid, s3_valid, s4_valid), (s1_last, s2_last, s3_last, s4_last) = \
            self.feed_valid, self.feed_last
        s1_first, s2_first, s3_first, s4_first = (Signal(name=f"s{n}_first") for n in (1, 2, 3, 4))
        m.d.comb += [skid.i.valid.eq(s4_valid), skid.i.payload.last.eq(s4_last)]
        m.d.comb += [rd.addr.eq(read_addr), rd.en.eq(advance),
                     self.gain.addr.eq(read_addr), self.gain.en.eq(advance)]
        stored = Signal(data.ArrayLayout(entry, feed_lanes))
        gains = [Signal.like(self.gain.data[lane], name=f"gain{lane}") for lane in range(feed_lanes)]
        x_mag = [Signal(NORM_MAX_BITLEN, name=f"x_mag{lane}") for lane in range(feed_lanes)]
        signed_gains = [Signal(signed(GAIN_BITS + 1), name=f"signed_gain{lane}")
                        for lane in range(feed_lanes)]
        squares = [Signal(2 * NORM_MAX_BITLEN, name=f"square{lane}") for lane in range(feed_lanes)]
        # The beats of a word a token does not fill (only its last word's: parts at or past
        # ``length mod ratio``, where that is not 0) are read as zeros; a flag a part, with the
        # read and then its data.
        s1_parts = Signal(ratio, init=(1 << ratio) - 1)
        s2_parts = Signal(ratio, init=(1 << ratio) - 1)

        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq(read_addr == last_word),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last),
                         s3_valid.eq(s2_valid), s3_last.eq(s2_last),
                         s4_valid.eq(s3_valid), s4_last.eq(s3_last),
                         s1_first.eq(passes == 2), s2_first.eq(s1_first), s3_first.eq(s2_first),
                         s4_first.eq(s3_first), stored.eq(rd.data)]
            if ratio > 1:
                # part p is filled where tail is 0 or above p (the first always; the last only at 0)
                tail = length[:part_bits]
                filled = Cat(1, *((tail == 0) | (tail > part) for part in range(1, ratio - 1)), tail == 0)
                m.d.sync += [s1_parts.eq(Mux(read_addr == last_word, filled, (1 << ratio) - 1)),
                             s2_parts.eq(s1_parts)]
            for lane in range(feed_lanes):
                gain = gains[lane]
                magnitude = (stored[lane].mag >> e)[:NORM_MAX_BITLEN]
                m.d.sync += [gain.eq(self.gain.data[lane]),
                             x_mag[lane].eq(magnitude if ratio == 1
                                            else Mux(s2_parts[lane // lanes], magnitude, 0)),
                             signed_gains[lane].eq(Mux(stored[lane].neg, -gain, gain)),
                             skid.i.payload.data[lane].eq(x_mag[lane] * signed_gains[lane]),
                             squares[lane].eq(x_mag[lane] * x_mag[lane])]
            with m.If(s4_valid & s4_first):
                m.d.sync += sum_sq.eq(sum_sq + sum(squares))

        peak_in = Signal()                           # u_peak latched a cycle ago
        m.d.sync += peak_in.eq(peak_pending & quantizer.o.valid)
        with m.If(peak_pending & quantizer.o.valid):
            m.d.sync += [u_peak.eq(quantizer.o.payload.peak), peak_zero.eq(quantizer.o.payload.peak == 0),
                         peak_pending.eq(0)]

        # -- D: S's scale, the sum with eps and its rsqrt on the unit; the products here ----------
        exp_bits = len(self.gain_exp)
        scale = scale_layout(exp_bits)
        sum_program, root_program = ScaleProgram(SUM_PROGRAM, exp_bits), ScaleProgram(ROOT_PROGRAM, exp_bits)
        products = {name: Signal(scale, name=name) for name in PRODUCTS}
        inv_act_max = scale.const({"mant": INV_ACT_MAX[0], "exp": INV_ACT_MAX[1]})
        sources = {"eps": self.eps, "mean_square": products["mean_square"]}
        integers = {"sum_sq": (sum_sq, 2 * e)}
        # m's scale, scale_from_int(m, e − gain_exp), two stages after m is latched
        peak_int, peak_int_invalid, peak_int_valid = from_int_stages(m, u_peak, peak_in, e - self.gain_exp,
                                                                     exp_bits, "peak_int")
        peak_int_ready, peak_int_bad = Signal(), Signal()
        with m.If(peak_int_valid):
            m.d.sync += [peak_int_ready.eq(1), peak_int_bad.eq(peak_int_invalid)]
        # the products, one at a time: operands registered, the multiplier's two stages, then stored
        m.submodules.scale_mul = mul = NormalizedScaleMultiplier(exp_bits)
        mul_a, mul_b = Signal(scale, name="mul_a"), Signal(scale, name="mul_b")
        mul_go, mul_busy, mul_to = Signal(), Signal(), Signal(range(len(PRODUCTS)))
        products_invalid = Signal()
        m.d.sync += mul_go.eq(0)
        m.d.comb += [mul.i.a.eq(mul_a), mul.i.b.eq(mul_b), mul.i.valid.eq(mul_go)]
        with m.If(mul.o.valid):
            m.d.sync += [mul_busy.eq(0), products_invalid.eq(products_invalid | mul.o.invalid)]
            with m.Switch(mul_to):
                for index, name in enumerate(PRODUCTS):
                    with m.Case(index):
                        m.d.sync += [products[name].mant.eq(mul.o.mant), products[name].exp.eq(mul.o.exp)]

        def issue(name, a, b):
            return [mul_a.eq(a), mul_b.eq(b), mul_go.eq(1), mul_busy.eq(1), mul_to.eq(PRODUCTS.index(name))]

        def product_state(state, name, a, b, then, ready=1, starting=()):
            """State ``state``: ``name = a · b`` (issued once ``ready``), then state ``then``."""
            with m.State(state):
                with m.If(~mul_busy & ready):
                    m.d.sync += issue(name, a, b)
                with m.If(mul.o.valid):
                    m.d.sync += list(starting)
                    m.next = then

        d_scale, d_invalid = Signal(scale, name="d_scale"), Signal(name="d_invalid")
        invalid = sum_program.invalid | root_program.invalid | products_invalid | peak_int_bad

        with m.FSM() as fsm:
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    with m.If(length == 0):
                        m.d.sync += self.overflow.eq(0)
                    with m.If(self.i.payload.last):
                        m.next = "SHIFT"
            with m.State("SHIFT"):
                # (once the previous token's second pass has left the feed: e is its shift)
                with m.If(~in_valid & ~s1_valid & ~s2_valid & ~s3_valid & ~s4_valid & ~skid.skid_valid
                          & ~quantizer.i.valid):
                    m.d.sync += [e.eq(e_next),
                                 last_word.eq((length - 1) >> part_bits), read_addr.eq(0),
                                 passes.eq(2), second.eq(0), sum_sq.eq(0), peak_int_ready.eq(0),
                                 products_invalid.eq(0), self.overflow.eq(overflowed),
                                 # x_scale² while the first pass runs (at least 7 cycles)
                                 *issue("x_scale_sq", self.x_scale, self.x_scale)]
                    m.next = "FEED"
            with m.State("FEED"):
                with m.If(first_pass_in):
                    m.d.sync += [second.eq(1), peak_pending.eq(1)] + sum_program.start()
                    m.next = "SUM"
            sum_program.states(m, unit, sources, integers, "SUM", "SUM_RESULT", "MEAN_SUM")
            product_state("MEAN_SUM", "mean_sum", sum_program.results["square_sum"], self.inv_len, "MEAN_SQUARE")
            product_state("MEAN_SQUARE", "mean_square", products["mean_sum"], products["x_scale_sq"], "ROOT",
                          starting=root_program.start())
            root_program.states(m, unit, sources, integers, "ROOT", "ROOT_RESULT", "PEAK")
            product_state("PEAK", "peak", peak_int, self.x_scale, "PEAK_RMS", ready=peak_int_ready)
            product_state("PEAK_RMS", "peak_rms", products["peak"], root_program.results["inv_rms"], "DEQUANT")
            # D registered as it is made (0 where m = 0), so that nothing changes it in DONE
            product_state("DEQUANT", "dequant", products["peak_rms"], inv_act_max, "DONE",
                          starting=[d_scale.mant.eq(Mux(peak_zero, 0, mul.o.mant)),
                                    d_scale.exp.eq(Mux(peak_zero, 0, mul.o.exp)),
                                    d_invalid.eq((invalid | mul.o.invalid) & ~peak_zero)])
            with m.State("DONE"):
                m.d.comb += [self.scale.valid.eq(1), self.scale.payload.mant.eq(d_scale.mant),
                             self.scale.payload.exp.eq(d_scale.exp), self.scale.payload.invalid.eq(d_invalid)]
                with m.If(self.scale.ready):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # the buffer is read until the second pass has been issued
                with m.If(passes == 0):
                    m.d.sync += [length.eq(0), x_bits.eq(0), overflowed.eq(0)]
                    m.next = "LOAD"
        self.fsm = fsm
        return m
