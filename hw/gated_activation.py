"""The MLP's gated activation ``act(gate) ⊙ up`` from the gate and up accumulators, exactly
``model.integer.gated_activation`` (docs/numerics.md §7), for ``hidden_act`` ``"relu2"`` or
``"silu"``.

``gate`` and ``up`` (real values ``acc · gate_scale`` and ``acc · up_scale``) arrive together on
``i``, ``lanes`` of each per beat, ``last`` on a vector's final beat. Then:

1. **Load**: both are stored while the shifts that bring the activation and ``up`` to 17 bits
   (``normalize``) are found from their maxima. relu² stores the gate (``max(gate, 0)²`` is the
   largest square); SiLU stores ``silu_q10(apply_scale(gate, gate_scale, 10))``, computed on the way
   in: one multiply, a rounding shift, the 2048-entry sigmoid table (:attr:`~GatedActivation.FRONT`
   pipelined cycles). A shift needs only a maximum's bit length, that of the magnitudes' OR
   (up's and SiLU's, each beat's registered a cycle before the running OR takes it); relu² needs
   ``max(gate, 0)`` itself, each beat's from a comparator tree with a register after every level
   (:func:`~hw.arith.pipelined_max`), and squares it once the last beat has left the tree.
2. **Scale**: the result's scale, which goes out on ``scale``: relu² ``gate_scale² · 2^e_act ·
   up_scale · 2^e_up``, SiLU ``2^(e_act − 10) · up_scale · 2^e_up``, each product rounded as
   ``scale_mul`` (``model.integer.gated_activation``: ``scale_mul`` by ``scale_from_int(1, e)``). The
   scales are normalized (mantissa in [2^15, 2^16), or zero), as every scale the engine makes is,
   so a product by a power of two is exact, an exponent sum: ``gate_scale²`` (a
   :class:`~hw.scale_unit.NormalizedScaleMultiplier`, while the vector loads), the two exponent sums
   (a register), the last product (a second multiplier): :data:`SCALE_CYCLES` cycles once the
   shifts are known. An exponent out of range on the way, or an unnormalized scale, makes it
   ``invalid``.
3. **Emit**: once the scale is taken, ``o`` carries ``(act >> e_act) · (up >> e_up)`` (magnitudes
   truncated, as ``normalize``), one beat per cycle: ``out_bits``-bit signed products, the input of
   the FFN sub-norm's :class:`~hw.rms_quantizer.RmsQuantizer`; :attr:`~GatedActivation.EMIT`
   pipelined cycles from a read to its product (the memory read, its register, relu² or the
   magnitudes, relu²'s square, the shifts, the product), ``o`` backpressure stalling them all.
   Every multiplier takes its operands from registers.

SiLU's Q.10 input comes from a right shift of ``gate · mant``; a ``gate_scale`` of 64 or more would
need a left shift (numerics allows it): ``scale.invalid`` flags it. Cycles for ``b`` beats with no
stalls: :meth:`cycles`.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import (NORM_BITS, NORM_MAX_BITLEN, SCALE_EXP_BITS, SIGMOID_FRAC, SIGMOID_RANGE,
                            SIGMOID_STEP_BITS, SIGMOID_TABLE, SILU_FRAC)

from .arith import (bit_length_tree, check_integers, magnitude, or_all, pipelined_max, read_pass,
                    tree_stages)
from .scale_unit import NormalizedScaleMultiplier, scale_layout

KINDS = ("relu2", "silu")
# the shifts registered, the exponent sums, the last product, the scale registered
SCALE_CYCLES = 2 + NormalizedScaleMultiplier.latency_of() + 1


class GatedActivation(wiring.Component):
    """``act(gate) ⊙ up`` for relu² or SiLU (``model.integer.gated_activation``) over a
    vector's beats; :meth:`cycles` from a vector's first input to its last output.

    Parameters
    ----------
    width : int
        Signed width of the gate and up accumulators (2 to 32 bits).
    lanes : int
        Elements per beat.
    max_length : int
        Longest vector in elements (the MLP's intermediate size).
    kind : str
        ``"relu2"`` or ``"silu"``.
    exp_bits : int
        Exponent width of the scales.
    """

    FRONT = 7      # SiLU on the way in: product, shift, round, table read, its register, product, round
    # read, its register, relu or magnitudes, the square (relu² only), shift, product
    EMIT = {"relu2": 6, "silu": 5}

    def __init__(self, *, width: int, lanes: int = 1, max_length: int, kind: str = "relu2",
                 exp_bits: int = SCALE_EXP_BITS):
        check_integers((("width", width, 2, 32), ("lanes", lanes, 1, 1024),
                        ("max_length", max_length, 1, 1 << 20)))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
        self._width, self._lanes, self._kind = width, lanes, kind
        self._depth = -(-max_length // lanes)
        scale = scale_layout(exp_bits)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "gate": data.ArrayLayout(signed(width), lanes),
                "up": data.ArrayLayout(signed(width), lanes), "last": 1}))),
            "gate_scale": In(scale), "up_scale": In(scale),
            "scale": Out(stream.Signature(data.StructLayout({
                "mant": unsigned(16), "exp": signed(exp_bits), "invalid": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(self.out_bits), lanes), "last": 1}))),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)
    kind = property(lambda self: self._kind)
    out_bits = property(lambda self: self.out_bits_of(self._kind))
    act_bits = property(lambda self: self.act_bits_of(self._kind, self._width))

    @staticmethod
    def out_bits_of(kind: str) -> int:
        """:attr:`out_bits` of a unit of ``kind``: relu², an unsigned 17-bit square; SiLU, a
        signed 18-bit value; times a signed 18-bit up."""
        return NORM_BITS + (NORM_MAX_BITLEN if kind == "relu2" else NORM_BITS)

    @staticmethod
    def act_bits_of(kind: str, width: int) -> int:
        """:attr:`act_bits` of a unit of ``kind`` for ``width``-bit inputs (SiLU's Q.10 input:
        gate · mant shifted right by at least 0)."""
        return width if kind == "relu2" else width + 17

    def cycles(self, beats: int) -> int:
        """Clock edges from a vector's first input transfer to its last output, no stalls."""
        return self.cycles_of(self._kind, beats, self._lanes)

    @staticmethod
    def cycles_of(kind: str, beats: int, lanes: int) -> int:
        """:meth:`cycles` of a unit of ``kind`` and ``lanes`` (for a cycle model without a unit)."""
        # load: the beats, then SiLU's front (FRONT stages) and the beat's ORs, or relu²'s
        # comparator tree and the running peak (whose square SQUARE registers once the tree is
        # empty); the shifts, the scale program, the scale out; then the emit pass: EMIT cycles
        # to a product out and a product a cycle
        unit = GatedActivation
        load = beats + 1 + (unit.FRONT if kind == "silu" else tree_stages(lanes))
        return load + SCALE_CYCLES + 1 + unit.EMIT[kind] + beats - 1

    def elaborate(self, platform):
        m = Module()
        width, lanes, silu = self._width, self._lanes, self._kind == "silu"
        act_bits = self.act_bits
        exp_bits = len(self.scale.payload.exp)
        pair = data.StructLayout({"act": data.ArrayLayout(signed(act_bits), lanes),
                                  "up": data.ArrayLayout(signed(width), lanes)})
        m.submodules.buffer = buffer = memory.Memory(shape=pair, depth=self._depth, init=[])
        wr, rd = buffer.write_port(), buffer.read_port()

        length = Signal(range(self._depth + 1))
        # normalize's e = max(0, bitlen(max) − 17) only needs a maximum's bit length, that of the
        # OR of the magnitudes: up's and SiLU's. relu² squares its peak (the largest square), so
        # it keeps max(gate, 0) itself, each beat's maximum from a registered comparator tree.
        act_peak = Signal(act_bits)        # relu²: max(gate, 0); SiLU: OR of |silu|
        up_bits = Signal(width)            # OR of |up|
        invalid = Signal()

        # -- load: the activation's input side (relu²: the gate itself; SiLU: silu_q10) ----------
        stored_valid, stored_last = Signal(), Signal()
        stored_act = [Signal(signed(act_bits), name=f"stored_act{lane}") for lane in range(lanes)]
        stored_up = [Signal(signed(width), name=f"stored_up{lane}") for lane in range(lanes)]
        take = Signal()
        if silu:
            self._silu_front(m, take, stored_valid, stored_last, stored_act, stored_up, invalid)
        else:
            m.d.comb += [stored_valid.eq(take), stored_last.eq(self.i.payload.last)]
            m.d.comb += [stored_act[lane].eq(self.i.payload.gate[lane]) for lane in range(lanes)]
            m.d.comb += [stored_up[lane].eq(self.i.payload.up[lane]) for lane in range(lanes)]
        # The beat and its magnitudes' ORs, registered: the running ORs take them a cycle later.
        beat_valid, beat_last = Signal(), Signal()
        beat_up_bits = Signal(width)
        beat = Signal(pair)
        m.d.sync += [beat_valid.eq(stored_valid), beat_last.eq(stored_last),
                     beat_up_bits.eq(or_all(magnitude(u)[:width] for u in stored_up)),
                     beat.eq(Cat(*(v for v in stored_act), *(v for v in stored_up)))]
        # A beat past max_length is dropped and not measured: whether it is kept is known as it is
        # registered, once the beat before it (if any) has been counted, and the buffer's write
        # enable is that register (the LUT RAM's write enable spans the die: from the LOAD state's
        # decoding it was the ULX3S-85F's slowest path).
        kept, beat_kept = Signal(), Signal()
        m.d.comb += kept.eq(stored_valid & (length + (beat_valid & (length < self._depth)) < self._depth))
        m.d.sync += beat_kept.eq(kept)
        m.d.comb += [wr.addr.eq(length), wr.data.eq(beat), wr.en.eq(beat_kept)]
        peak_stages = []                   # relu²: the comparator tree holds a beat
        if silu:
            beat_act_bits = Signal(act_bits)
            m.d.sync += beat_act_bits.eq(or_all(magnitude(v)[:act_bits] for v in stored_act))
        else:
            relus = [Signal(act_bits, name=f"relu_in{lane}") for lane in range(lanes)]
            m.d.comb += [relu.eq(Mux(v > 0, v, 0).as_unsigned()[:act_bits])
                         for relu, v in zip(relus, stored_act)]
            beat_max, beat_max_valid, peak_stages = pipelined_max(m, relus, kept, "act_max")
            with m.If(beat_max_valid & (beat_max > act_peak)):
                m.d.sync += act_peak.eq(beat_max)

        # e = bitlen(max >> 17). relu²: of the largest square, registered in SQUARE; SiLU and up: of
        # the magnitudes' OR.
        act_extreme = act_peak if silu else Signal(2 * act_bits)
        e_act = Signal(range(max(len(act_extreme) - NORM_MAX_BITLEN, 0) + 1))
        e_up = Signal(range(max(width - NORM_MAX_BITLEN, 0) + 1))
        e_act_next = bit_length_tree(m, act_extreme[NORM_MAX_BITLEN:], "e_act_bitlen")
        e_up_next = bit_length_tree(m, up_bits[NORM_MAX_BITLEN:], "e_up_bitlen")

        # -- the scale: act (relu²: gate_scale² · 2^e_act; SiLU: 2^(e_act − 10)), up_scale · 2^e_up
        # (exponent sums: the scales are normalized), then their product --------------------------
        scale = scale_layout(exp_bits)
        limit = 1 << (exp_bits - 1)
        wide = signed(exp_bits + 2)

        def normalized(value):
            return (value.mant == 0) | value.mant[-1]

        def times_power(value, exp, mant_zero):
            """``value · 2^exp`` (normalized ``value``): its exponent plus ``exp``; zero stays (0, 0)."""
            total = Signal(wide)
            m.d.comb += total.eq(value.exp + exp)
            return (Mux(mant_zero, 0, value.mant), Mux(mant_zero, 0, total),
                    ~mant_zero & ((total < -limit) | (total >= limit)))

        m.submodules.square = square_mul = NormalizedScaleMultiplier(exp_bits)
        m.submodules.product = product_mul = NormalizedScaleMultiplier(exp_bits)
        act_scale, up_scaled, sums_invalid = Signal(scale), Signal(scale), Signal()
        sums_valid = Signal()
        m.d.comb += [square_mul.i.a.eq(self.gate_scale), square_mul.i.b.eq(self.gate_scale)]
        if silu:     # scale_from_int(1, e_act − 10): 2^15 · 2^(e_act − 10 − 15)
            act_mant, act_exp, act_bad = times_power(
                scale.const({"mant": 1 << 15, "exp": 0}), e_act - SILU_FRAC - 15, Const(0))
            act_bad |= ~normalized(self.gate_scale)      # (SiLU's front reads gate_scale)
        else:
            act_mant, act_exp, act_bad = times_power(square_mul.o, e_act, square_mul.o.mant == 0)
            act_bad |= square_mul.o.invalid
        up_mant, up_exp, up_bad = times_power(self.up_scale, e_up, self.up_scale.mant == 0)
        up_bad |= ~normalized(self.up_scale)
        m.d.comb += [product_mul.i.a.eq(act_scale), product_mul.i.b.eq(up_scaled),
                     product_mul.i.valid.eq(sums_valid)]

        # -- emit: read (memory) -> its register -> relu or magnitudes -> the square (relu²) ->
        # act_n and up_n (shifted) -> product (output register) ----------------------------------
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        read_addr = Signal(range(self._depth + 1))
        issue = Signal()
        valid = [Signal(name=f"s{stage}_valid") for stage in range(1, self.EMIT[self._kind])]
        last = [Signal(name=f"s{stage}_last") for stage in range(1, self.EMIT[self._kind])]
        m.d.comb += [rd.addr.eq(read_addr), rd.en.eq(advance)]
        read = Signal(pair)
        with m.If(advance):
            m.d.sync += [valid[0].eq(issue), last[0].eq(read_addr == length - 1), read.eq(rd.data),
                         self.o.valid.eq(valid[-1]), self.o.payload.last.eq(last[-1])]
            m.d.sync += [later.eq(earlier)
                         for chain in (valid, last) for earlier, later in zip(chain, chain[1:])]
            for lane in range(lanes):
                act, up = read.act[lane], read.up[lane]
                up_magnitude = Signal(width + 1, name=f"up_magnitude{lane}")
                up_negative = Signal(name=f"up_negative{lane}")
                act_n = Signal(signed(NORM_BITS), name=f"act_n{lane}")
                up_n = Signal(signed(NORM_BITS), name=f"up_n{lane}")
                m.d.sync += [up_magnitude.eq(magnitude(up)), up_negative.eq(up < 0),
                             self.o.payload.data[lane].eq(act_n * up_n)]
                if silu:
                    act_magnitude = Signal(act_bits + 1, name=f"act_magnitude{lane}")
                    act_negative = Signal(name=f"act_negative{lane}")
                    m.d.sync += [act_magnitude.eq(magnitude(act)), act_negative.eq(act < 0),
                                 act_n.eq(truncated(act_magnitude, act_negative, e_act)),
                                 up_n.eq(truncated(up_magnitude, up_negative, e_up))]
                else:
                    # relu² is max(act, 0)²: the sign bit alone picks it
                    relu = Signal(width, name=f"relu{lane}")
                    square = Signal(2 * width, name=f"square{lane}")
                    up_held = Signal(width + 1, name=f"up_held{lane}")
                    up_held_negative = Signal(name=f"up_held_negative{lane}")
                    m.d.sync += [relu.eq(Mux(act[-1], 0, act.as_unsigned())[:width]),
                                 square.eq(relu * relu), act_n.eq(square >> e_act),
                                 up_held.eq(up_magnitude), up_held_negative.eq(up_negative),
                                 up_n.eq(truncated(up_held, up_held_negative, e_up))]

        with m.FSM():
            with m.State("LOAD"):
                # After a vector's last beat nothing more is taken until it has been stored.
                closing = Signal()
                m.d.comb += [self.i.ready.eq(~closing), take.eq(self.i.valid & ~closing)]
                with m.If(take & self.i.payload.last):
                    m.d.sync += closing.eq(1)
                with m.If(beat_kept):                       # (a stored beat)
                    m.d.sync += [length.eq(length + 1), up_bits.eq(up_bits | beat_up_bits)]
                    if silu:
                        m.d.sync += act_peak.eq(act_peak | beat_act_bits)
                with m.If(beat_valid):
                    with m.If(beat_last):
                        m.d.sync += closing.eq(0)
                        m.next = "SHIFTS" if silu else "SQUARE"
            if not silu:
                with m.State("SQUARE"):
                    # the square of the peak once the last beat has left the comparator tree
                    m.d.sync += act_extreme.eq(act_peak * act_peak)
                    with m.If(~Cat(*peak_stages).any()):
                        m.next = "SHIFTS"
            with m.State("SHIFTS"):
                m.d.sync += [e_act.eq(e_act_next), e_up.eq(e_up_next)]
                m.next = "SUMS"
            with m.State("SUMS"):
                m.d.sync += [act_scale.mant.eq(act_mant), act_scale.exp.eq(act_exp),
                             up_scaled.mant.eq(up_mant), up_scaled.exp.eq(up_exp),
                             sums_invalid.eq(act_bad | up_bad), sums_valid.eq(1)]
                m.next = "PRODUCT"
            with m.State("PRODUCT"):
                m.d.sync += sums_valid.eq(0)
                with m.If(product_mul.o.valid):
                    m.d.sync += [self.scale.payload.mant.eq(product_mul.o.mant),
                                 self.scale.payload.exp.eq(product_mul.o.exp),
                                 self.scale.payload.invalid.eq(
                                     product_mul.o.invalid | sums_invalid | invalid)]
                    m.next = "SCALE"
            with m.State("SCALE"):
                m.d.comb += self.scale.valid.eq(1)
                with m.If(self.scale.ready):
                    m.d.sync += read_addr.eq(0)
                    m.next = "EMIT"
            with m.State("EMIT"):
                with m.If(read_pass(m, issue, read_addr, length, advance, valid)):
                    m.d.sync += [length.eq(0), act_peak.eq(0), up_bits.eq(0), invalid.eq(0)]
                    m.next = "LOAD"
        return m

    def _silu_front(self, m, take, valid, last, act, up, invalid):
        """silu_q10(apply_scale(gate, gate_scale, 10)) on the way in, :attr:`FRONT` stages, each
        registered: the product gate · mant and the shift; twice the product shifted right (the
        rounding bit kept); the rounded Q.10 input x (its clamped table index addresses the table);
        the table entry's register; x · entry; the result rounded."""
        width, lanes = self._width, self._lanes
        table = memory.Memory(shape=unsigned(SIGMOID_FRAC), depth=SIGMOID_TABLE.size,
                              init=[int(v) for v in SIGMOID_TABLE])
        m.submodules.sigmoid = table
        product_bits = width + 17
        shift = Signal(signed(len(self.gate_scale.exp) + 2))
        m.d.comb += shift.eq(-(self.gate_scale.exp + SILU_FRAC))
        # rshift_round(p, shift) = ((2p >> shift) + 1) >> 1 for shift >= 0 (past the product's
        # width the same as one past it); a left shift (flagged invalid) leaves p.
        right = Signal(range(product_bits + 2))
        m.d.sync += right.eq(Mux(shift < 0, 0, Mux(shift > product_bits + 1, product_bits + 1, shift)))
        with m.If(take & (shift < 0)):
            m.d.sync += invalid.eq(1)
        stages = self.FRONT
        valids = [Signal(name=f"silu{stage}_valid") for stage in range(1, stages)]
        lasts = [Signal(name=f"silu{stage}_last") for stage in range(1, stages)]
        m.d.sync += [valids[0].eq(take), lasts[0].eq(self.i.payload.last), valid.eq(valids[-1]),
                     last.eq(lasts[-1])]
        m.d.sync += [later.eq(earlier)
                     for chain in (valids, lasts) for earlier, later in zip(chain, chain[1:])]
        index_bits = (SIGMOID_TABLE.size - 1).bit_length()
        step = SILU_FRAC - SIGMOID_STEP_BITS
        assert SIGMOID_RANGE << SIGMOID_STEP_BITS == SIGMOID_TABLE.size // 2 == 1 << (index_bits - 1)
        for lane in range(lanes):
            product = Signal(signed(product_bits), name=f"silu_product{lane}")
            halved = Signal(signed(product_bits + 1), name=f"silu_halved{lane}")
            x = [Signal(signed(product_bits), name=f"silu_x{lane}_{stage}") for stage in range(3)]
            entry = Signal(SIGMOID_FRAC, name=f"silu_entry{lane}")
            scaled = Signal(signed(product_bits + SIGMOID_FRAC + 1), name=f"silu_scaled{lane}")
            ups = [Signal(signed(width), name=f"silu_up{lane}_{stage}") for stage in range(stages - 1)]
            port = table.read_port()
            # (x >> 4) + 1024, clamped to the table: x >> 4 itself where it fits the index's bits,
            # with the top bit flipped.
            index = x[0] >> step
            fits = fits_signed(index, index_bits)
            m.d.comb += port.addr.eq(Mux(fits, index[:index_bits] ^ (1 << (index_bits - 1)),
                                         Mux(index[-1], 0, SIGMOID_TABLE.size - 1)))
            m.d.sync += [product.eq(self.i.payload.gate[lane] * self.gate_scale.mant),
                         halved.eq(Cat(Const(0, 1), product).as_signed() >> right),
                         x[0].eq((halved + 1) >> 1), x[1].eq(x[0]), x[2].eq(x[1]),
                         entry.eq(port.data), scaled.eq(x[2] * entry),
                         act[lane].eq((scaled + (1 << (SIGMOID_FRAC - 1))) >> SIGMOID_FRAC),
                         ups[0].eq(self.i.payload.up[lane]), up[lane].eq(ups[-1])]
            m.d.sync += [later.eq(earlier) for earlier, later in zip(ups, ups[1:])]


def truncated(magnitude_, negative, shift):
    """``sign · (|value| >> shift)`` to NORM_BITS, from the magnitude and the sign (``normalize``)."""
    shifted = (magnitude_ >> shift)[:NORM_BITS]
    return Mux(negative, -shifted, shifted)


def fits_signed(value, bits: int):
    """``value`` (signed) fits ``bits`` signed bits: its bits from ``bits − 1`` up are all equal."""
    top = value[bits - 1:]
    return (top == 0) | (top == (1 << len(top)) - 1)
