"""One attention head for one query over the KV cache, exactly ``model.integer.attend``
(docs/numerics.md §6).

The query's ``head_dim`` int8 codes arrive on ``q``, ``lanes`` per beat; ``q_scale`` (its scale),
``score_coef`` (``log2(e)/sqrt(head_dim)``) and ``length`` (cached positions, the query's own
included) hold while it is processed. The unit reads the cache through four read ports whose
addresses are local to the head: ``keys`` and ``values`` (word ``j·W + w`` holds elements
``w·lanes …`` of position ``j``, ``W = head_dim / lanes``), ``key_scales`` and ``value_scales``
(word ``j``). Then, with no stalls inside:

1. **Scores** (``length · W`` cycles): ``dot_j = q · k_j`` with ``lanes`` int8 products a cycle;
   per key, two pipelined scale products ``coef_j = (s_kj · s_q) · score_coef``
   (:class:`~hw.scale_unit.NormalizedScaleMultiplier`) and ``z_j = apply_scale(dot_j, coef_j, 8)``
   into a buffer, tracking ``max z``.
2. **Weights** (``length`` cycles): ``p_j = EXP2[δ & 255] >> (δ >> 8)`` for ``δ = max z − z_j``
   (0 beyond 15), ``Σp``, and ``w_j = scale_from_int(p_j, −15) · s_vj`` into a buffer, tracking the
   largest exponent ``E`` of the nonzero ones.
3. **Values** (``length · W`` cycles): ``o_i = Σ_j (mant_j >> (E − exp_j)) · v_j,i``, ``lanes``
   16×8-bit products a cycle.
4. **Row scale**: a ScaleProgram ``scale_from_int(1, E) · 1/scale_from_int(Σp, −15)``, run while
   the values are summed (it needs only Σp and E); then
   ``saturate(apply_scale(o, row scale, 16), 32)`` leaves on ``o`` through a
   :class:`~hw.dequantizer.Dequantizer`, ``lanes`` per beat, ``last`` on the head's final beat.

Scales must be normalized (mantissa ≥ 2^15) or zero, as the engine makes them; ``invalid`` on
``o`` flags otherwise, or a score coefficient of 2^8 or more (``apply_scale`` would shift left: a
score scale far outside any model). Where every value scale is zero numerics has no ``E`` (it
raises); the unit then outputs zeros. Cycles: :meth:`cycles`.
"""

from amaranth import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import (ACT_BITS, ACT_MAX, EXP2_TABLE, EXP_FRAC, EXP_TABLE_BITS, RES_BITS, RES_FRAC,
                            SCALE_BITS, SCALE_EXP_BITS, SCORE_FRAC)

from .arith import bit_length, check_integers, rounded_right_shift
from .dequantizer import Dequantizer
from .scale_unit import NormalizedScaleMultiplier, ScaleOp, ScaleProgram, ScaleUnit, scale_layout

ACT_MAX_SQUARE = ACT_MAX ** 2
ROW_PROGRAM = (
    ("weight_sum", ScaleOp.FROM_INT, None, None, "p_sum"),
    ("inv_sum", ScaleOp.RECIP, "weight_sum", None, None),
    ("top_unit", ScaleOp.FROM_INT, None, None, "top"),
    ("row", ScaleOp.MUL, "top_unit", "inv_sum", None),
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
        Elements per cache word and per beat (divides ``head_dim``).
    max_positions : int
        The context: the largest ``length``.
    exp_bits : int
        Exponent width of the scales.
    """

    def __init__(self, *, head_dim: int, lanes: int = 1, max_positions: int, exp_bits: int = SCALE_EXP_BITS):
        check_integers((("head_dim", head_dim, 1, 1024), ("lanes", lanes, 1, 1024),
                        ("max_positions", max_positions, 1, 1 << 16)))
        if head_dim % lanes:
            raise ValueError(f"lanes must divide head_dim {head_dim}, not {lanes}; "
                             f"{[d for d in range(1, head_dim + 1) if head_dim % d == 0]} would")
        self._head_dim, self._lanes, self._max_positions = head_dim, lanes, max_positions
        self._words = head_dim // lanes
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
                "data": data.ArrayLayout(signed(RES_BITS), lanes), "last": 1, "invalid": 1}))),
        })

    head_dim = property(lambda self: self._head_dim)
    lanes = property(lambda self: self._lanes)
    words = property(lambda self: self._words)
    max_positions = property(lambda self: self._max_positions)

    def cycles(self, length: int) -> int:
        """Clock edges from the query's last beat to the first output beat offered, no stalls: the
        scores, the weights, the values or the row scale (whichever is longer) and the
        Dequantizer's :attr:`~hw.dequantizer.Dequantizer.latency`."""
        passes = self.passes_of(length, self._words)
        return (passes["scores"] + passes["weights"] + max(passes["values"], passes["row_scale"])
                + Dequantizer.latency_of())

    @staticmethod
    def passes_of(length: int, words: int) -> dict:
        """Clock edges of each pass over ``length`` positions, ``words`` cache words a head (for a
        cycle model that overlaps heads): ``scores``, ``weights``, ``values`` and, made while the
        values are summed, ``row_scale``."""
        # + 7: key word read to z written (memory, dot, 2 × 2 scale stages, product, shift);
        # + 6: z read to weight written (memory, table, normalize p, 2 scale stages)
        return {"scores": 1 + length * words + 7,
                "weights": 1 + length + 6,
                "values": length * words + 2,
                "row_scale": ScaleProgram.cycles(ROW_PROGRAM) + 1}

    def elaborate(self, platform):
        m = Module()
        d, lanes, words, max_positions = self._head_dim, self._lanes, self._words, self._max_positions
        exp_bits = len(self.q_scale.exp)
        scale = scale_layout(exp_bits)
        dot_bits = (d * ACT_MAX_SQUARE).bit_length() + 1
        z_bits = dot_bits + SCALE_BITS + 1
        p_sum_bits = EXP_FRAC + 1 + max_positions.bit_length()
        out_bits = SCALE_BITS + ACT_BITS + max_positions.bit_length() + 1

        m.submodules.key_scale_mul = key_mul = NormalizedScaleMultiplier(exp_bits)
        m.submodules.coef_mul = coef_mul = NormalizedScaleMultiplier(exp_bits)
        m.submodules.weight_mul = weight_mul = NormalizedScaleMultiplier(exp_bits)
        m.submodules.scale_unit = unit = ScaleUnit(exp_bits=exp_bits, int_bits=p_sum_bits)
        m.submodules.output = output = Dequantizer(width=out_bits, lanes=lanes, frac=RES_FRAC,
                                                   out_bits=RES_BITS, exp_bits=exp_bits)
        m.submodules.z_buffer = z_buffer = memory.Memory(shape=signed(z_bits), depth=max_positions,
                                                         init=[])
        m.submodules.weight_buffer = weight_buffer = memory.Memory(shape=scale, depth=max_positions,
                                                                   init=[])
        m.submodules.exp2 = exp2 = memory.Memory(shape=unsigned(EXP_FRAC + 1), depth=len(EXP2_TABLE),
                                                 init=[int(v) for v in EXP2_TABLE])
        z_write, z_read = z_buffer.write_port(), z_buffer.read_port()
        weight_write, weight_read = weight_buffer.write_port(), weight_buffer.read_port()
        exp2_read = exp2.read_port()

        q = [Signal(signed(ACT_BITS), name=f"q{i}") for i in range(d)]
        q_taken = Signal(range(words + 1))
        invalid = Signal()

        # -- pass counters: position j, word w (issue side) --------------------------------------
        j = Signal(range(max_positions + 1))
        w = Signal(range(words))
        issuing = Signal()
        last_word = w == words - 1
        m.d.comb += [self.keys.addr.eq(j * words + w), self.values.addr.eq(j * words + w),
                     self.key_scales.addr.eq(j), self.value_scales.addr.eq(j),
                     z_read.addr.eq(j), weight_read.addr.eq(j)]

        # -- scores: word data -> dot (accumulated over W words) -> coef -> z ------------------
        s1_valid, s1_last_word, s1_first_word = Signal(), Signal(), Signal()
        s1_index = Signal(range(max_positions))
        dot = Signal(signed(dot_bits))
        dot_valid, dot_index = Signal(), Signal(range(max_positions))
        key_scale = Signal(scale)
        scoring = Signal()
        m.d.sync += [s1_valid.eq(issuing & scoring), s1_last_word.eq(last_word),
                     s1_first_word.eq(w == 0), s1_index.eq(j)]
        s1_word = Signal(range(words))
        m.d.sync += s1_word.eq(w)
        word_products = sum(Array(q[word * lanes + lane] for word in range(words))[s1_word]
                            * self.keys.data[lane] for lane in range(lanes))
        partial = Mux(s1_first_word, 0, dot) + word_products
        with m.If(s1_valid):
            m.d.sync += dot.eq(partial)
        m.d.sync += [dot_valid.eq(s1_valid & s1_last_word), dot_index.eq(s1_index)]
        with m.If(s1_valid & s1_last_word):
            m.d.sync += key_scale.eq(self.key_scales.data)
        # dot_valid: dot_j and s_kj are registered; two scale products follow (2 stages each).
        m.d.comb += [key_mul.i.a.eq(key_scale), key_mul.i.b.eq(self.q_scale), key_mul.i.valid.eq(dot_valid),
                     coef_mul.i.a.eq(key_mul.o), coef_mul.i.b.eq(self.score_coef),
                     coef_mul.i.valid.eq(key_mul.o.valid)]
        dot_delay = [Signal(signed(dot_bits), name=f"dot_d{k}") for k in range(4)]
        index_delay = [Signal(range(max_positions), name=f"index_d{k}") for k in range(4)]
        bad_delay = [Signal(name=f"bad_d{k}") for k in range(2)]
        m.d.sync += [dot_delay[0].eq(dot), index_delay[0].eq(dot_index)]
        for k in range(1, 4):
            m.d.sync += [dot_delay[k].eq(dot_delay[k - 1]), index_delay[k].eq(index_delay[k - 1])]
        m.d.sync += [bad_delay[0].eq(key_mul.o.invalid & key_mul.o.valid), bad_delay[1].eq(bad_delay[0])]
        # coef_mul.o is valid with dot_delay[3]: product, then the rounding shift.
        product = Signal(signed(dot_bits + SCALE_BITS + 1))
        shift = Signal(signed(exp_bits + 2))
        product_valid, product_index = Signal(), Signal(range(max_positions))
        m.d.sync += [product.eq(dot_delay[3] * coef_mul.o.mant),
                     shift.eq(-(coef_mul.o.exp + SCORE_FRAC)),
                     product_valid.eq(coef_mul.o.valid), product_index.eq(index_delay[3])]
        with m.If(coef_mul.o.valid & (coef_mul.o.invalid | bad_delay[1])):
            m.d.sync += invalid.eq(1)
        z_new = rounded_right_shift(m, product, shift, "z_new")
        z_max = Signal(signed(z_bits))
        z_count = Signal(range(max_positions + 1))
        with m.If(product_valid):
            m.d.comb += [z_write.addr.eq(product_index), z_write.data.eq(z_new), z_write.en.eq(1)]
            m.d.sync += z_count.eq(z_count + 1)
            with m.If((z_count == 0) | (z_new > z_max)):
                m.d.sync += z_max.eq(z_new)
            with m.If(shift < 0):
                m.d.sync += invalid.eq(1)      # a left shift: coef >= 2^8, outside the contract

        # -- weights: z -> p (table) -> scale_from_int(p, -15) -> times s_vj ------------------
        weighing = Signal()
        t1_valid, t1_index = Signal(), Signal(range(max_positions))
        t2_valid, t2_index, t2_whole, t2_member = Signal(), Signal(range(max_positions)), Signal(4), Signal()
        t2_value_scale = Signal(scale)
        m.d.sync += [t1_valid.eq(issuing & weighing), t1_index.eq(j)]
        delta = Signal(unsigned(z_bits + 1))
        m.d.comb += [delta.eq(z_max - z_read.data), exp2_read.addr.eq(delta[:EXP_TABLE_BITS])]
        m.d.sync += [t2_valid.eq(t1_valid), t2_index.eq(t1_index),
                     t2_whole.eq(delta[SCORE_FRAC:SCORE_FRAC + 4]),
                     t2_member.eq(delta[SCORE_FRAC:] <= EXP_FRAC),
                     t2_value_scale.eq(self.value_scales.data)]
        p = Signal(EXP_FRAC + 1)
        m.d.comb += p.eq(Mux(t2_member, exp2_read.data >> t2_whole, 0))
        p_sum = Signal(p_sum_bits)
        # scale_from_int(p, -15): p <= 2^15 shifts left to a 16-bit mantissa, exactly.
        p_bitlen = bit_length(m, p, "p_bitlen")
        p_scale = Signal(scale)
        p_left = Signal(range(SCALE_BITS + 1))
        m.d.comb += p_left.eq(SCALE_BITS - p_bitlen)
        t3_valid, t3_index = Signal(), Signal(range(max_positions))
        t3_value_scale = Signal(scale)
        m.d.sync += [p_scale.mant.eq(p << p_left),
                     p_scale.exp.eq(Mux(p == 0, 0, -EXP_FRAC - p_left)),
                     t3_valid.eq(t2_valid), t3_index.eq(t2_index), t3_value_scale.eq(t2_value_scale)]
        with m.If(t2_valid):
            m.d.sync += p_sum.eq(p_sum + p)
        m.d.comb += [weight_mul.i.a.eq(p_scale), weight_mul.i.b.eq(t3_value_scale),
                     weight_mul.i.valid.eq(t3_valid)]
        weight_index = [Signal(range(max_positions), name=f"weight_index{k}") for k in range(2)]
        m.d.sync += [weight_index[0].eq(t3_index), weight_index[1].eq(weight_index[0])]
        top = Signal(signed(exp_bits))
        live_seen = Signal()
        weights_done = Signal(range(max_positions + 1))
        with m.If(weight_mul.o.valid):
            m.d.comb += [weight_write.addr.eq(weight_index[1]), weight_write.en.eq(1),
                         weight_write.data.mant.eq(weight_mul.o.mant),
                         weight_write.data.exp.eq(weight_mul.o.exp)]
            m.d.sync += weights_done.eq(weights_done + 1)
            with m.If(weight_mul.o.invalid):
                m.d.sync += invalid.eq(1)
            with m.If((weight_mul.o.mant != 0) & (~live_seen | (weight_mul.o.exp > top))):
                m.d.sync += [top.eq(weight_mul.o.exp), live_seen.eq(1)]

        # -- values: weight_j aligned to E, times the value word, into the accumulators --------
        summing = Signal()
        u1_valid, u1_word = Signal(), Signal(range(words))
        m.d.sync += [u1_valid.eq(issuing & summing), u1_word.eq(w)]
        distance = Signal(unsigned(exp_bits + 1))
        m.d.comb += distance.eq(top - weight_read.data.exp)
        aligned = Signal(SCALE_BITS)
        m.d.comb += aligned.eq(Mux((weight_read.data.mant == 0) | (distance >= SCALE_BITS), 0,
                                   weight_read.data.mant >> distance[:5]))
        accumulators = [Signal(signed(out_bits), name=f"o{i}") for i in range(d)]
        clear = Signal()
        with m.If(clear):
            m.d.sync += [a.eq(0) for a in accumulators]
        with m.Elif(u1_valid):
            with m.Switch(u1_word):
                for word in range(words):
                    with m.Case(word):
                        for lane in range(lanes):
                            acc = accumulators[word * lanes + lane]
                            m.d.sync += acc.eq(acc + aligned * self.values.data[lane])

        # -- row scale and output: a second machine, so that the next query is taken and scored
        # while this one's row scale is made and its output leaves ----------------------------
        program = ScaleProgram(ROW_PROGRAM, exp_bits)
        row_p_sum, row_top = Signal(p_sum_bits), Signal(signed(exp_bits))
        integers = {"p_sum": (row_p_sum, -EXP_FRAC), "top": (1, row_top)}
        row = program.results["row"]
        row_start = Signal()
        summed, values_done = Signal(), Signal()   # the output machine's query is summed (now)
        out_invalid = Signal()
        output_idle = Signal()
        with m.If(row_start):
            m.d.sync += [row_p_sum.eq(p_sum), row_top.eq(top)]
        m.d.comb += output.scale.eq(row)
        out_word = Signal(range(words + 1))
        with m.Switch(out_word):
            for word in range(words):
                with m.Case(word):
                    for lane in range(lanes):
                        m.d.comb += output.i.payload.data[lane].eq(accumulators[word * lanes + lane])
        m.d.comb += [output.i.payload.last.eq(out_word == words - 1),
                     self.o.payload.data.eq(output.o.payload.data),
                     self.o.payload.last.eq(output.o.payload.last),
                     self.o.payload.invalid.eq(out_invalid | program.invalid),
                     self.o.valid.eq(output.o.valid), output.o.ready.eq(self.o.ready)]

        for port in (self.keys, self.values, self.key_scales, self.value_scales):
            m.d.comb += port.en.eq(1)
        m.d.comb += [z_read.en.eq(1), weight_read.en.eq(1), exp2_read.en.eq(1)]

        def advance_position():
            with m.If(last_word):
                m.d.sync += [w.eq(0), j.eq(j + 1)]
            with m.Else():
                m.d.sync += w.eq(w + 1)

        with m.FSM():
            with m.State("Q"):
                m.d.comb += self.q.ready.eq(1)
                with m.If(self.q.valid):
                    with m.Switch(q_taken):
                        for word in range(words):
                            with m.Case(word):
                                m.d.sync += [q[word * lanes + lane].eq(self.q.payload[lane])
                                             for lane in range(lanes)]
                    m.d.sync += q_taken.eq(q_taken + 1)
                    with m.If(q_taken == words - 1):
                        m.d.sync += [q_taken.eq(0), j.eq(0), w.eq(0), z_count.eq(0), invalid.eq(0)]
                        m.next = "SCORES"
            with m.State("SCORES"):
                m.d.comb += [scoring.eq(1), issuing.eq(j < self.length)]
                with m.If(j < self.length):
                    advance_position()
                with m.If(z_count == self.length):
                    m.d.sync += [j.eq(0), w.eq(0), p_sum.eq(0), live_seen.eq(0), top.eq(0),
                                 weights_done.eq(0)]
                    m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [weighing.eq(1), issuing.eq(j < self.length)]
                with m.If(j < self.length):
                    m.d.sync += j.eq(j + 1)
                # the accumulators are free once the previous query's output has left
                with m.If((weights_done == self.length) & output_idle):
                    m.d.sync += [j.eq(0), w.eq(0)]
                    m.d.comb += [clear.eq(1), row_start.eq(1)]
                    m.next = "VALUES"
            with m.State("VALUES"):
                m.d.comb += [summing.eq(1), issuing.eq(j < self.length)]
                with m.If(j < self.length):
                    advance_position()
                with m.Elif(~u1_valid):
                    m.d.comb += values_done.eq(1)
                    m.d.sync += [summed.eq(1), out_invalid.eq(invalid)]
                    m.next = "Q"

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
                m.d.comb += output.i.valid.eq(out_word < words)
                with m.If(output.i.ready & (out_word < words)):
                    m.d.sync += out_word.eq(out_word + 1)
                with m.If(out_word == words):
                    with m.If(output.o.valid & output.o.ready & output.o.payload.last):
                        m.d.sync += [out_word.eq(0), summed.eq(0)]
                        m.next = "IDLE"

        return m

