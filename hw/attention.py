"""One attention head for one query over the KV cache, exactly ``model.integer.attend``
(docs/numerics.md §6).

The query's ``head_dim`` int8 codes arrive on ``q``, ``lanes`` per beat; ``q_scale`` (its scale),
``score_coef`` (``log2(e)/sqrt(head_dim)``) and ``length`` (cached positions, the query's own
included) hold while it is processed. The unit reads the cache through four read ports whose
addresses are local to the head: ``keys`` and ``values`` (word ``j·W + w`` holds elements
``w·lanes …`` of position ``j``, ``W = head_dim / lanes``), ``key_scales`` and ``value_scales``
(word ``j``). Then, with no stalls inside:

1. **Scores** (``length · W`` cycles): ``dot_j = q · k_j`` with ``lanes`` int8 products a cycle
   summed by a pipelined adder tree; per key, two pipelined scale products
   ``coef_j = (s_kj · s_q) · score_coef`` (:class:`~hw.scale_unit.NormalizedScaleMultiplier`) and
   ``z_j = apply_scale(dot_j, coef_j, 8)`` (product, shift, rounding: a stage each) into a buffer,
   tracking ``max z``.
2. **Weights** (``length`` cycles): ``p_j = EXP2[δ & 255] >> (δ >> 8)`` for ``δ = max z − z_j``
   (0 beyond 15), ``Σp``, and ``w_j = scale_from_int(p_j, −15) · s_vj`` into a buffer, tracking the
   largest exponent ``E`` of the nonzero ones.
3. **Values** (``length · W`` cycles): ``o_i = Σ_j (mant_j >> (E − exp_j)) · v_j,i``, ``lanes``
   16×8-bit products a cycle into ``lanes`` adders; the accumulators are a ring of ``W`` words that
   turns a word for each word summed or output, so that word is always its first (and one output
   goes back as 0).
4. **Row scale**: ``scale_from_int(1, E) · 1/scale_from_int(Σp, −15)``, a ScaleProgram for the
   reciprocal run while the values are summed (it needs only Σp and E) and an exponent sum (the
   product of ``2^15`` and a normalized mantissa is that mantissa); then ``o`` leaves,
   ``out_lanes`` per beat (an :class:`~hw.packing.Unpacker` splits each accumulator word into
   ``lanes / out_lanes`` beats), each beat with the row scale, ``last`` on the head's final beat: a
   :class:`~hw.dequantizer.Dequantizer` input (the engine's one) that makes the head's output
   ``saturate(apply_scale(o, row scale, 16), 32)``.

Queries overlap, three passes of three queries at once: once a query's scores are in, its weights
pass starts (``weights_start`` pulses) and the next query is taken and scored; once its weights are
made and the previous query's output has left, its values pass starts (``values_start``). From the
cycle after each pulse the ``value_scales`` (``values``) port reads for the query it started, so a
caller that maps heads onto cache regions switches that port's region then. The z and weight
buffers have two banks each; ``q_scale`` and ``length`` need hold only until ``weights_start``.
Queries offered back to back are taken every :meth:`period_of` cycles.

Scales must be normalized (mantissa ≥ 2^15) or zero, as the engine makes them; ``invalid`` on
``o`` flags otherwise, or a score coefficient of 2^8 or more (``apply_scale`` would shift left: a
score scale far outside any model). Where every value scale is zero numerics has no ``E`` (it
raises); the unit then outputs zeros. Every block-RAM read (the cache's, the buffers', the table's)
and every multiplier operand and product is registered before it is used. Cycles: :meth:`cycles`.
"""

from amaranth import Cat, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import (ACT_BITS, ACT_MAX, EXP2_TABLE, EXP_FRAC, EXP_TABLE_BITS,
                            SCALE_BITS, SCALE_EXP_BITS, SCORE_FRAC)

from .arith import bank_address, check_integers, divisors
from .multiplier import RegisteredMultiplier, check_primitive
from .packing import Unpacker
from .scale_unit import (NormalizedScaleMultiplier, ScaleOp, ScaleProgram, scale_layout,
                         scale_unit_members, scale_unit_of)

ACT_MAX_SQUARE = ACT_MAX ** 2
# lanes a copy of the values pass's aligned weight feeds: up to that many the multipliers' own
# operand registers take it; above, a registered copy a group of that many lanes (a stage more:
# the multipliers lie across the die)
LANES_PER_ALIGNED = 16
# 1/Σp; the row scale scale_from_int(1, E) · 1/Σp is then only an exponent sum: a normalized
# mantissa times 2^15 renormalizes to itself (and a reciprocal's mantissa is normalized).
ROW_PROGRAM = (
    ("weight_sum", ScaleOp.FROM_INT, None, None, "p_sum"),
    ("inv_sum", ScaleOp.RECIP, "weight_sum", None, None),
)


class AttentionHead(wiring.Component):
    """One attention head for one query over the KV cache (``model.integer.attend``): scores, base-2
    softmax weights and the weighted values, one pass each over the positions; :meth:`cycles`
    from the query's last beat to the first output beat.

    Parameters
    ----------
    head_dim : int
        Elements per head.
    lanes : int
        Elements per cache word and per query beat (divides ``head_dim``).
    out_lanes : int
        Elements per output beat (divides ``lanes``; ``lanes`` if not given).
    max_positions : int
        The context: the largest ``length``.
    exp_bits : int
        Exponent width of the scales.
    shared_scale : bool
        Run the scale program on a :class:`~hw.scale_unit.SharedScaleUnit` through the
        ``scale_unit`` port instead of a ScaleUnit of its own.
    multiplier : str or None
        The primitive of the key and value products (:class:`~hw.multiplier.RegisteredMultiplier`:
        ``"MULT18X18D"`` on ECP5), or None for fabric registers around an inferred multiply.
    """

    def __init__(self, *, head_dim: int, lanes: int = 1, out_lanes: int | None = None,
                 max_positions: int, exp_bits: int = SCALE_EXP_BITS, shared_scale: bool = False,
                 multiplier: str | None = None):
        check_integers((("head_dim", head_dim, 1, 1024), ("lanes", lanes, 1, 1024),
                        ("max_positions", max_positions, 1, 1 << 16)))
        if head_dim % lanes:
            raise ValueError(f"lanes must divide head_dim {head_dim}, not {lanes}; "
                             f"{[d for d in range(1, head_dim + 1) if head_dim % d == 0]} would")
        out_lanes = lanes if out_lanes is None else out_lanes
        check_integers((("out_lanes", out_lanes, 1, lanes),))
        if lanes % out_lanes:
            raise ValueError(f"out_lanes must divide lanes {lanes}, not {out_lanes}; "
                             f"{divisors(lanes)} would")
        self._head_dim, self._lanes, self._max_positions = head_dim, lanes, max_positions
        self._out_lanes = out_lanes
        self._words = head_dim // lanes
        check_primitive("multiplier", multiplier)
        self._multiplier = multiplier
        scale = scale_layout(exp_bits)
        word = data.ArrayLayout(signed(ACT_BITS), lanes)
        cache_words = max(1, (max_positions * self._words - 1).bit_length())
        positions = max(1, (max_positions - 1).bit_length())
        super().__init__({
            "q": In(stream.Signature(word)),
            "q_scale": In(scale), "score_coef": In(scale), "length": In(range(max_positions + 1)),
            "keys": Out(memory.ReadPort.Signature(addr_width=cache_words, shape=word).flip()),
            "values": Out(memory.ReadPort.Signature(addr_width=cache_words, shape=word).flip()),
            "key_scales": Out(memory.ReadPort.Signature(addr_width=positions, shape=scale).flip()),
            "value_scales": Out(memory.ReadPort.Signature(addr_width=positions, shape=scale).flip()),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(self.out_bits_of(max_positions)), out_lanes),
                "scale": scale, "last": 1, "invalid": 1}))),
            "weights_start": Out(1), "values_start": Out(1),
            **scale_unit_members(shared_scale, exp_bits, self.p_sum_bits),
        })

    head_dim = property(lambda self: self._head_dim)
    lanes = property(lambda self: self._lanes)
    out_lanes = property(lambda self: self._out_lanes)
    words = property(lambda self: self._words)
    out_beats = property(lambda self: self._head_dim // self._out_lanes)   # output beats a head
    max_positions = property(lambda self: self._max_positions)
    # Σ p_j, FROM_INT's operand: Q.EXP_FRAC weights below 2, one a position
    p_sum_bits = property(lambda self: EXP_FRAC + 1 + self._max_positions.bit_length())
    out_bits = property(lambda self: self.out_bits_of(self._max_positions))

    @staticmethod
    def out_bits_of(max_positions: int) -> int:
        """Signed bits of an output element ``o_i``: ``|o_i| <= positions · (2^16 − 1) · 2^7``
        (aligned weights below 2^16 times int8 values)."""
        return (max_positions * ((1 << SCALE_BITS) - 1) << (ACT_BITS - 1)).bit_length() + 1

    def cycles(self, length: int) -> int:
        """Clock edges from the query's last beat to the first output beat offered, no stalls: the
        scores, the weights, and the values or the row scale (whichever is longer)."""
        passes = self.passes_of(length, self._words, self._lanes)
        return passes["scores"] + passes["weights"] + max(passes["values"], passes["row_scale"])

    @staticmethod
    def passes_of(length: int, words: int, lanes: int = 1) -> dict:
        """Clock edges of each pass over ``length`` positions, ``words`` cache words a head (for a
        cycle model that overlaps heads): ``scores`` (to the maximum z in), ``weights``, ``values``
        and, made while the values are summed, ``row_scale``. ``lanes`` matters only beyond 32 (a
        deeper adder tree)."""
        stages = AttentionHead.stages_of(lanes)
        return {"scores": 2 + length * words + stages["z"],
                "weights": 1 + length + stages["weight"] + 1,
                "values": length * words + stages["accumulate"] + 1,
                "row_scale": ScaleProgram.cycles(ROW_PROGRAM) + 1}

    @staticmethod
    def period_of(length: int, words: int, lanes: int, out_beats: int, intake: int | None = None) -> int:
        """Clock edges from one query's first ``q`` beat to the next query's, queries offered
        back to back over ``length`` positions and the output taken at once: the longest of the
        query and scores passes, the weights pass, and the values pass or row scale (whichever is
        longer) with the output (``out_beats``) (each hands its query on in a cycle of its own).
        ``intake``: the query's beats take this long instead of ``words`` (a caller that hands each
        beat on some cycles after the one before: ``words − 1`` times that many)."""
        passes = AttentionHead.passes_of(length, words, lanes)
        output = max(passes["values"], passes["row_scale"]) + out_beats
        return max((words if intake is None else intake) + passes["scores"] + 1, passes["weights"] + 2,
                   output + 1)

    @staticmethod
    def stages_of(lanes: int) -> dict:
        """The cycle, counted from a word's issue (the cache's data arrive in cycle 1), in which each
        pass's pipeline does its work: ``dot`` (dot_j registered), ``coef`` (coef_j out of its
        products), ``product`` (dot_j · coef_j, where the two meet), ``z`` (z_j written), ``weight``
        (w_j written) and ``accumulate`` (a value word summed).

        Scores: 1 the key word, 2 registered, 3 in the multipliers, 4 its products, then the adder
        tree (two adder levels a stage, the accumulation into dot last); the key scale registered
        in 2, then two scale products; z_j = dot_j · coef_j, shifted, rounded. Weights: 1 z_j, 2 registered, 3
        delta, 4 the table's entry, 5 registered, 6 p_j and its scale, then the product. Values:
        1 the weight and value word, 2 registered, 3 the exponent distance, 4 the aligned weight
        (in the multipliers' operand registers), 5 the products, summed in 5; above
        ``LANES_PER_ALIGNED`` lanes the aligned weight is registered in copies in 4, in the
        multipliers in 5, the products in 6, summed in 6."""
        scale_product = NormalizedScaleMultiplier.latency_of()
        dot = 5 + (lanes - 1).bit_length() // 2
        coef = 2 + 2 * scale_product
        product = max(dot, coef)
        return {"dot": dot, "coef": coef, "product": product, "z": product + 2,
                "weight": 6 + scale_product, "accumulate": 5 + (lanes > LANES_PER_ALIGNED)}

    def elaborate(self, platform):
        m = Module()
        d, lanes, words, max_positions = self._head_dim, self._lanes, self._words, self._max_positions
        exp_bits = len(self.q_scale.exp)
        scale = scale_layout(exp_bits)
        word = data.ArrayLayout(signed(ACT_BITS), lanes)
        dot_bits = (d * ACT_MAX_SQUARE).bit_length() + 1
        z_bits = dot_bits + SCALE_BITS + 1
        p_sum_bits = self.p_sum_bits
        out_bits = self.out_bits
        stages = self.stages_of(lanes)

        m.submodules.key_scale_mul = key_mul = NormalizedScaleMultiplier(exp_bits)
        m.submodules.coef_mul = coef_mul = NormalizedScaleMultiplier(exp_bits)
        m.submodules.weight_mul = weight_mul = NormalizedScaleMultiplier(exp_bits)
        unit = scale_unit_of(m, self, exp_bits=exp_bits, int_bits=self.p_sum_bits)
        out_lanes, pieces = self._out_lanes, lanes // self._out_lanes
        # two banks each: a query's scores (weights) are written into one while the previous
        # query's weights (values) pass reads the other
        m.submodules.z_buffer = z_buffer = memory.Memory(shape=signed(z_bits), depth=2 * max_positions,
                                                         init=[])
        m.submodules.weight_buffer = weight_buffer = memory.Memory(shape=scale, depth=2 * max_positions,
                                                                   init=[])
        m.submodules.exp2 = exp2 = memory.Memory(shape=unsigned(EXP_FRAC + 1), depth=len(EXP2_TABLE),
                                                 init=[int(v) for v in EXP2_TABLE])
        z_write, z_read = z_buffer.write_port(), z_buffer.read_port()
        weight_write, weight_read = weight_buffer.write_port(), weight_buffer.read_port()
        exp2_read = exp2.read_port()

        # q, a register a word: the words shift in as the query arrives and turn as the scores use
        # them, so the word in use is always q_words[0] and no multiplexer picks it
        q_words = [Signal(word, name=f"q_word{k}") for k in range(words)]
        q_taken = Signal(range(words + 1))
        q_load, q_turn = Signal(), Signal()
        with m.If(q_load | q_turn):
            m.d.sync += [q_words[k].eq(q_words[k + 1]) for k in range(words - 1)]
            m.d.sync += q_words[-1].eq(Mux(q_load, self.q.payload, q_words[0]))
        invalid = Signal()

        # -- pass counters (issue side), one set a pass as the passes run side by side: the
        # scores' position j, word w and cache word j·W + w; the weights' position wj; the
        # values' vj, vw and v_word. Each later pass has its query's length and buffer banks. ---
        j = Signal(range(max_positions + 1))
        w = Signal(range(words))
        cache_word = Signal(range(max_positions * words + 1))
        issuing = Signal()
        last_word = w == words - 1
        wj = Signal(range(max_positions + 1))
        w_issuing = Signal()
        w_length = Signal.like(self.length)       # the weighed query's length
        vj = Signal(range(max_positions + 1))
        vw = Signal(range(words))
        v_word = Signal(range(max_positions * words + 1))
        v_issuing = Signal()
        v_length = Signal.like(self.length)       # the summed query's length
        z_bank, w_z_bank = Signal(), Signal()     # the z buffer's bank: scores, weights
        weight_bank, v_bank = Signal(), Signal()  # the weight buffer's bank: weights, values
        m.d.comb += [self.keys.addr.eq(cache_word), self.values.addr.eq(v_word),
                     self.key_scales.addr.eq(j), self.value_scales.addr.eq(wj),
                     z_read.addr.eq(bank_address(w_z_bank, max_positions, wj)),
                     weight_read.addr.eq(bank_address(v_bank, max_positions, vj))]

        # -- scores: key word -> products -> adder tree into dot -> times coef -> z (stages_of) --
        scoring = Signal()
        s_valid, s_first, s_last = Signal(), Signal(), Signal()
        m.d.sync += [s_valid.eq(issuing & scoring), s_first.eq(w == 0), s_last.eq(last_word)]
        s_valids = delay_line(m, s_valid, stages["dot"] - 2, "s_valid")
        s_firsts = delay_line(m, s_first, stages["dot"] - 2, "s_first")
        s_lasts = delay_line(m, s_last, stages["dot"] - 2, "s_last")
        key_scale = Signal(scale)
        m.d.sync += key_scale.eq(self.key_scales.data)
        m.d.comb += q_turn.eq(s_valids[1])
        # the key word registered in 2 in the fabric (the cache's block-RAM read and read
        # multiplexer a cycle of their own), then in 3 in the multipliers with the query word in use
        key_word = Signal(word)
        m.d.sync += key_word.eq(self.keys.data)
        terms = []
        for lane in range(lanes):
            m.submodules[f"key_product{lane}"] = product = RegisteredMultiplier(
                signed(ACT_BITS), signed(ACT_BITS), primitive=self._multiplier)
            m.d.comb += [product.a.eq(key_word[lane]), product.b.eq(q_words[0][lane])]
            terms.append(product.p)
        levels = (lanes - 1).bit_length()
        for level in range(1, levels + 1):
            domain = m.d.sync if (levels + 1 - level) % 2 == 0 else m.d.comb
            pairs = [terms[index:index + 2] for index in range(0, len(terms), 2)]
            terms = [Signal(signed(2 * ACT_BITS + level), name=f"key_sum{level}_{index}")
                     for index in range(len(pairs))]
            for node, pair in zip(terms, pairs):
                domain += node.eq(sum(pair))
        dot, dot_valid = Signal(signed(dot_bits)), Signal()
        with m.If(s_valids[-1]):
            m.d.sync += dot.eq(Mux(s_firsts[-1], 0, dot) + terms[0])
        m.d.sync += dot_valid.eq(s_valids[-1] & s_lasts[-1])
        # coef_j = (s_kj · s_q) · score_coef from the key scale registered in cycle 2
        m.d.comb += [key_mul.i.a.eq(key_scale), key_mul.i.b.eq(self.q_scale),
                     key_mul.i.valid.eq(s_valids[1] & s_lasts[1]),
                     coef_mul.i.a.eq(key_mul.o), coef_mul.i.b.eq(self.score_coef),
                     coef_mul.i.valid.eq(key_mul.o.valid)]
        with m.If((key_mul.o.valid & key_mul.o.invalid) | (coef_mul.o.valid & coef_mul.o.invalid)):
            m.d.sync += invalid.eq(1)
        coef = Signal(scale)
        m.d.comb += [coef.mant.eq(coef_mul.o.mant), coef.exp.eq(coef_mul.o.exp)]
        dot_at = delay_line(m, dot, stages["product"] - stages["dot"], "dot")[-1]
        dot_valid_at = delay_line(m, dot_valid, stages["product"] - stages["dot"], "dot_valid")[-1]
        coef_at = delay_line(m, coef, stages["product"] - stages["coef"], "coef")[-1]
        # z = rshift_round(v, s) for v = dot · mant, s = −(exp + 8): ((2v >> s) + 1) >> 1 for s > 0,
        # (2v >> 0) >> 1 = v otherwise; shifts past 2v's width give what one past it gives
        product = Signal(signed(dot_bits + SCALE_BITS + 1))
        shift = Signal(signed(exp_bits + 2))
        m.d.comb += shift.eq(-(coef_at.exp + SCORE_FRAC))
        right = Signal(range(len(product) + 2))
        rounds, left, product_valid = Signal(), Signal(), Signal()
        m.d.sync += [product.eq(dot_at * coef_at.mant), product_valid.eq(dot_valid_at),
                     right.eq(Mux(shift > len(product) + 1, len(product) + 1, Mux(shift > 0, shift, 0))),
                     rounds.eq(shift > 0), left.eq(shift < 0)]
        with m.If(product_valid & left):
            m.d.sync += invalid.eq(1)      # a left shift: coef >= 2^8, outside the contract
        halved = Signal(signed(len(product) + 1))
        halved_rounds, halved_valid = Signal(), Signal()
        m.d.sync += [halved.eq(Cat(0, product).as_signed() >> right), halved_rounds.eq(rounds),
                     halved_valid.eq(product_valid)]
        z_new = Signal(signed(z_bits))
        m.d.comb += z_new.eq((halved + halved_rounds) >> 1)
        z_count = Signal(range(max_positions + 1))
        with m.If(halved_valid):
            m.d.comb += [z_write.addr.eq(bank_address(z_bank, max_positions, z_count)),
                         z_write.data.eq(z_new), z_write.en.eq(1)]
            m.d.sync += z_count.eq(z_count + 1)
        # max z, a cycle after the write
        z_last, z_max = Signal(signed(z_bits)), Signal(signed(z_bits))
        z_last_valid, z_first = Signal(), Signal()
        m.d.sync += [z_last.eq(z_new), z_last_valid.eq(halved_valid), z_first.eq(z_count == 0)]
        with m.If(z_last_valid & (z_first | (z_last > z_max))):
            m.d.sync += z_max.eq(z_last)

        # -- weights: z -> delta -> p (table) -> scale_from_int(p, -15) -> times s_vj ---------
        weighing = Signal()
        t_valid = Signal()
        w_z_max = Signal(signed(z_bits))          # the weighed query's max z
        w_invalid = Signal()                      # its flags from the scores, then its own
        m.d.sync += t_valid.eq(w_issuing & weighing)
        t_valids = delay_line(m, t_valid, 5, "t_valid")
        z_read_data, value_scale = Signal(signed(z_bits)), Signal(scale)
        m.d.sync += [z_read_data.eq(z_read.data), value_scale.eq(self.value_scales.data)]
        delta = Signal(unsigned(z_bits + 1))
        m.d.sync += delta.eq(w_z_max - z_read_data)
        m.d.comb += exp2_read.addr.eq(delta[:EXP_TABLE_BITS])
        # p = EXP2[f] >> whole (0 where whole > 15): EXP2[0] = 2^15 and the rest lie in
        # [2^14, 2^15), so scale_from_int(p, -15) is EXP2[f] with its low `whole` bits cleared,
        # shifted left once where f != 0, exponent -15 - whole - (f != 0); the scale 0 where
        # whole > 15 or p = 0 (f != 0 and whole = 15)
        whole_bits, member_bit, fraction_bit = Signal(4), Signal(), Signal()
        m.d.sync += [whole_bits.eq(delta[SCORE_FRAC:SCORE_FRAC + 4]),
                     member_bit.eq(delta[SCORE_FRAC + 4:] == 0),
                     fraction_bit.eq(delta[:EXP_TABLE_BITS] != 0)]
        table, whole, member, fraction = Signal(EXP_FRAC + 1), Signal(4), Signal(), Signal()
        m.d.sync += [table.eq(exp2_read.data), whole.eq(whole_bits), member.eq(member_bit),
                     fraction.eq(fraction_bit)]
        live = Signal()
        kept = Signal(EXP_FRAC + 1)
        m.d.comb += [live.eq(member & ~(fraction & (whole == EXP_FRAC))),
                     kept.eq(Cat(table[b] if b >= 2 ** len(whole) - 1 else table[b] & (whole <= b)
                                 for b in range(EXP_FRAC + 1)))]     # whole <= 15 always holds
        p = Signal(EXP_FRAC + 1)
        p_scale = Signal(scale)
        m.d.sync += [p.eq(Mux(member, table >> whole, 0)),
                     p_scale.mant.eq(Mux(live, kept << fraction, 0)),
                     p_scale.exp.eq(Mux(live, -EXP_FRAC - whole - fraction, 0))]
        p_sum = Signal(p_sum_bits)
        with m.If(t_valids[-1]):
            m.d.sync += p_sum.eq(p_sum + p)
        m.d.comb += [weight_mul.i.a.eq(p_scale),
                     weight_mul.i.b.eq(delay_line(m, value_scale, 4, "value_scale")[-1]),
                     weight_mul.i.valid.eq(t_valids[-1])]
        top = Signal(signed(exp_bits))
        live_seen = Signal()
        weights_done = Signal(range(max_positions + 1))
        with m.If(weight_mul.o.valid):
            m.d.comb += [weight_write.addr.eq(bank_address(weight_bank, max_positions, weights_done)),
                         weight_write.en.eq(1),
                         weight_write.data.mant.eq(weight_mul.o.mant),
                         weight_write.data.exp.eq(weight_mul.o.exp)]
            m.d.sync += weights_done.eq(weights_done + 1)
            with m.If(weight_mul.o.invalid):
                m.d.sync += w_invalid.eq(1)
            with m.If((weight_mul.o.mant != 0) & (~live_seen | (weight_mul.o.exp > top))):
                m.d.sync += [top.eq(weight_mul.o.exp), live_seen.eq(1)]

        # -- values: weight_j aligned to E, times the value word, into the accumulator ring -----
        row_p_sum, row_top = Signal(p_sum_bits), Signal(signed(exp_bits))   # Σp and E, summed query
        summing = Signal()
        u_valid = Signal()
        m.d.sync += u_valid.eq(v_issuing & summing)
        u_valids = delay_line(m, u_valid, stages["accumulate"] - 1, "u_valid")
        weight, value_word = Signal(scale), Signal(word)
        m.d.sync += [weight.eq(weight_read.data), value_word.eq(self.values.data)]
        distance, weight_zero, weight_mant = Signal(unsigned(exp_bits + 1)), Signal(), Signal(SCALE_BITS)
        m.d.sync += [distance.eq(row_top - weight.exp), weight_zero.eq(weight.mant == 0),
                     weight_mant.eq(weight.mant)]
        # the aligned weight (0 between words, so the products are 0 then) into every lane's
        # multiplier, which registers it (and the value word) beside itself: one register feeding
        # 32 multipliers was the ULX3S-85F's slowest path (18 of its 22 ns routing), then a
        # multiplier placed across the die from its operand (7.2 + 4.9 ns of routing around the
        # block). Above LANES_PER_ALIGNED lanes, a registered copy a group of that many lanes first,
        # marked `keep` so that the board flow keeps the copies apart (fpga/flow/synth.py,
        # KEEP_COPIES), where Yosys would merge them back into one. The datapath's registers from
        # here on are not reset: u_valids say when they count (the reset net through their input
        # logic was the 85F's slowest path at 32 lanes, 11.6 ns).
        aligned = Signal(SCALE_BITS)
        m.d.comb += aligned.eq(Mux(~u_valids[2] | weight_zero | (distance >= SCALE_BITS), 0,
                                   weight_mant >> distance[:4]))
        near = stages["accumulate"] - 5
        feeds = [aligned] * lanes
        if near:
            copies = [Signal(SCALE_BITS, name=f"aligned{c}", attrs={"keep": 1}, reset_less=True)
                      for c in range(-(-lanes // LANES_PER_ALIGNED))]
            m.d.sync += [copy.eq(aligned) for copy in copies]
            feeds = [copies[lane // LANES_PER_ALIGNED] for lane in range(lanes)]
        value_in = delay_line(m, value_word, 1 + near, "value_word")[-1]
        value_products = []
        for lane in range(lanes):
            m.submodules[f"value_product{lane}"] = product = RegisteredMultiplier(
                unsigned(SCALE_BITS), signed(ACT_BITS), primitive=self._multiplier)
            m.d.comb += [product.a.eq(feeds[lane]), product.b.eq(value_in[lane])]
            value_products.append(product.p)
        # the ring: its first word is summed (or output) and goes to the back; a word output goes
        # back as 0, so every query's sums start from 0 (as they do after reset). The back word's
        # clear and the domain's reset are one synchronous reset, so its flip-flops' own reset
        # input makes the 0 (no multiplexer after the adders).
        accumulators = [Signal(data.ArrayLayout(signed(out_bits), lanes), name=f"o_word{k}",
                               reset_less=k == words - 1) for k in range(words)]
        emitted_word, back_clear = Signal(), Signal()
        m.d.comb += back_clear.eq(emitted_word | ResetSignal())
        with m.If(u_valids[-1] | back_clear):
            m.d.sync += [accumulators[k].eq(accumulators[k + 1]) for k in range(words - 1)]
            m.d.sync += [accumulators[-1][lane].eq(Mux(back_clear, 0,
                                                       accumulators[0][lane] + value_products[lane]))
                         for lane in range(lanes)]

        # -- row scale and output: machines of their own (with the values pass's), so that the
        # next query is taken, scored and weighed while this one's values are summed, its row
        # scale is made and its output leaves ---------------------------------------------------
        program = ScaleProgram(ROW_PROGRAM, exp_bits)
        integers = {"p_sum": (row_p_sum, -EXP_FRAC)}
        # the row scale (1/Σp's mantissa, its exponent + E), registered from the program's result
        # and E; an exponent out of the scale's range flags the output invalid
        inv_sum = program.results["inv_sum"]
        row, row_exp_wide, row_overflow = Signal(scale), Signal(signed(exp_bits + 1)), Signal()
        m.d.comb += row_exp_wide.eq(inv_sum.exp + row_top)
        m.d.sync += [row.mant.eq(inv_sum.mant), row.exp.eq(row_exp_wide),
                     row_overflow.eq(row_exp_wide[-1] != row_exp_wide[-2])]
        row_start, weights_start = Signal(), Signal()
        summed, values_done = Signal(), Signal()   # the output machine's query is summed (now)
        out_invalid = Signal()
        output_idle, weights_idle = Signal(), Signal()
        with m.If(row_start):
            m.d.sync += [row_p_sum.eq(p_sum), row_top.eq(top), v_length.eq(w_length),
                         v_bank.eq(weight_bank), weight_bank.eq(~weight_bank),
                         out_invalid.eq(w_invalid)]
        m.d.comb += [self.weights_start.eq(weights_start), self.values_start.eq(row_start)]
        out_word = Signal(range(words))
        # the first accumulator word, out_lanes a beat, out with the row scale
        m.submodules.output_unpacker = unpacker = Unpacker(signed(out_bits), out_lanes, pieces)
        m.d.comb += [unpacker.i.payload.data.eq(accumulators[0]),
                     unpacker.i.payload.last.eq(out_word == words - 1),
                     emitted_word.eq(unpacker.i.valid & unpacker.i.ready),
                     self.o.valid.eq(unpacker.o.valid), unpacker.o.ready.eq(self.o.ready),
                     self.o.payload.data.eq(unpacker.o.payload.data),
                     self.o.payload.last.eq(unpacker.o.payload.last), self.o.payload.scale.eq(row),
                     self.o.payload.invalid.eq(out_invalid | program.invalid | row_overflow)]

        for port in (self.keys, self.values, self.key_scales, self.value_scales):
            m.d.comb += port.en.eq(1)
        m.d.comb += [z_read.en.eq(1), weight_read.en.eq(1), exp2_read.en.eq(1)]

        def restart_pass():
            m.d.sync += [j.eq(0), w.eq(0), cache_word.eq(0)]

        def advance_position(cache_word, w, j):
            """The next cache word, word within its position, position."""
            m.d.sync += cache_word.eq(cache_word + 1)
            with m.If(w == words - 1):
                m.d.sync += [w.eq(0), j.eq(j + 1)]
            with m.Else():
                m.d.sync += w.eq(w + 1)

        with m.FSM():
            with m.State("Q"):
                m.d.comb += [self.q.ready.eq(1), q_load.eq(self.q.valid)]
                with m.If(self.q.valid):
                    m.d.sync += q_taken.eq(q_taken + 1)
                    with m.If(q_taken == words - 1):
                        m.d.sync += [q_taken.eq(0), z_count.eq(0), invalid.eq(0)]
                        restart_pass()
                        m.next = "SCORES"
            with m.State("SCORES"):
                m.d.comb += [scoring.eq(1), issuing.eq(j < self.length)]
                with m.If(j < self.length):
                    advance_position(cache_word, w, j)
                # the query goes to the weights pass once it is free; the next query is taken
                # and scored meanwhile
                with m.If((z_count == self.length) & ~z_last_valid & weights_idle):   # max z in
                    m.d.comb += weights_start.eq(1)
                    m.d.sync += [w_z_max.eq(z_max), w_length.eq(self.length), w_z_bank.eq(z_bank),
                                 z_bank.eq(~z_bank), w_invalid.eq(invalid)]
                    m.next = "Q"

        with m.FSM(name="weights_fsm"):
            with m.State("IDLE"):
                m.d.comb += weights_idle.eq(1)
                with m.If(weights_start):
                    m.d.sync += [wj.eq(0), p_sum.eq(0), live_seen.eq(0), top.eq(0),
                                 weights_done.eq(0)]
                    m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [weighing.eq(1), w_issuing.eq(wj < w_length)]
                with m.If(wj < w_length):
                    m.d.sync += wj.eq(wj + 1)
                # the query goes to the values pass once the previous query's output has left
                # (the accumulators are free)
                with m.If((weights_done == w_length) & output_idle):
                    m.d.comb += row_start.eq(1)
                    m.next = "IDLE"

        with m.FSM(name="values_fsm"):
            with m.State("IDLE"):
                with m.If(row_start):
                    m.d.sync += [vj.eq(0), vw.eq(0), v_word.eq(0)]
                    m.next = "VALUES"
            with m.State("VALUES"):
                m.d.comb += [summing.eq(1), v_issuing.eq(vj < v_length)]
                with m.If(vj < v_length):
                    advance_position(v_word, vw, vj)
                with m.Elif(~Cat(*u_valids).any()):
                    m.d.comb += values_done.eq(1)
                    m.d.sync += summed.eq(1)
                    m.next = "IDLE"

        with m.FSM(name="output_fsm"):
            with m.State("IDLE"):
                m.d.comb += output_idle.eq(1)
                with m.If(row_start):
                    m.d.sync += program.start()
                    m.next = "ISSUE"
            # the row scale needs only Σp and E: it is made while the values are summed
            program.states(m, unit, {}, integers, "ISSUE", "RESULT", "WAIT")
            with m.State("WAIT"):
                with m.If(summed | values_done):
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += unpacker.i.valid.eq(1)
                with m.If(unpacker.i.ready):
                    m.d.sync += out_word.eq(out_word + 1)
                    with m.If(out_word == words - 1):      # the head's last beat is out
                        m.d.sync += [out_word.eq(0), summed.eq(0)]
                        m.next = "IDLE"

        return m


def delay_line(m, value, cycles: int, name: str) -> list:
    """``value`` and its copies delayed by 1 … ``cycles`` registers, in that order."""
    line = [value]
    for k in range(cycles):
        stage = Signal(value.shape(), name=f"{name}_d{k + 1}")
        m.d.sync += stage.eq(line[-1])
        line.append(stage)
    return line
