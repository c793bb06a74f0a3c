"""The int8 token table (``model.integer.RowScaledInt8``) in on-chip ROM, used both ways
(docs/numerics.md §4, §8): as the **embedding** (a token's row into the residual stream) and as
the **LM head** (integer logits of a quantized vector). A tied model has one table for both; an
untied one instantiates two, one for each use.

- ``token`` → ``embedding``: the row's ``hidden`` int8 codes, ``embedding_lanes`` per beat (a
  divisor of ``lanes``: a ROM word in ``lanes / embedding_lanes`` beats, so a tied table serves a
  wide LM head and narrower vector lanes from one ROM), each beat with the row's scale
  ``(rows_v, exp)`` and ``last`` on the row's end: a
  :class:`~hw.dequantizer.Dequantizer` input (the engine's one, shared with the residual add and
  the attention output) that makes ``saturate(apply_scale(codes_v, scale, 16), 32)``.
- ``x`` (``lanes`` int8 codes per beat, ``last`` on the final beat) → ``logits``: once the vector is
  in, ``L_v = (codes_v · x) · rows_v`` for ``v = 0 … vocab−1`` in order, ``lanes`` products a cycle,
  ``last`` on the final logit.

ROM: ``vocab × hidden/lanes`` words of ``lanes`` int8 codes and ``vocab`` 16-bit row mantissas.
Cycles: a row in ``hidden/embedding_lanes + 2`` (:meth:`row_cycles`); the
logits in ``vocab · hidden/lanes + 8`` (:meth:`logit_cycles`). Each use has its own ROM read ports
(a tied table is one dual-port ROM), so the two may overlap.

Both uses are pipelines that a full output stalls, with the ROM's read data registered before use.
The LM head keeps ``x`` in a small RAM, read a word a cycle beside the table; then the products
(each a multiplier block, MULT18X18D on ECP5, with registered operands and product: ``lanes`` of
them), the lane sum in two stages (an adder level a stage up to 4 lanes, two up to 16), the running
dot, a copy of the dot and the row's mantissa (registers the placer can put beside the logit's
multipliers), and the logit, their product, each a stage of its own.
"""

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.integer import RowScaledInt8
from model.numerics import ACT_BITS, ACT_MAX, SCALE_BITS, SCALE_EXP_BITS

from .arith import divisors
from .scale_unit import scale_layout
from .skid_buffer import SkidBuffer


def logit_width(hidden: int) -> int:
    """Signed bits of an integer logit: ``|codes · x| <= 127² · hidden``, times a 16-bit mantissa."""
    return (ACT_MAX * ACT_MAX * hidden).bit_length() + SCALE_BITS + 1


class TokenTable(wiring.Component):
    """The int8 token table used as the embedding (a row into the residual stream) and/or the
    LM head (integer logits of a quantized vector), in on-chip ROM.

    Parameters
    ----------
    table : RowScaledInt8
        Codes [vocab, hidden], row mantissas and the common exponent.
    lanes : int
        Codes per ROM word and per ``x`` beat (divides hidden).
    embedding_lanes : int
        Codes per ``embedding`` beat (divides ``lanes``; default ``lanes``).
    embedding, lm_head : bool
        Which uses to build.
    """

    def __init__(self, table: RowScaledInt8, *, lanes: int, embedding_lanes: int | None = None,
                 embedding: bool = True, lm_head: bool = True):
        codes = np.asarray(table.codes)
        if codes.ndim != 2 or np.abs(codes).max(initial=0) > ACT_MAX:
            raise ValueError("table codes must be int8 values in a [vocab, hidden] array")
        vocab, hidden = codes.shape
        if not isinstance(lanes, int) or lanes < 1 or hidden % lanes:
            raise ValueError(f"lanes must divide hidden {hidden}, not {lanes!r}")
        if not (embedding or lm_head):
            raise ValueError("build at least one of embedding and lm_head")
        embedding_lanes = lanes if embedding_lanes is None else embedding_lanes
        if not isinstance(embedding_lanes, int) or embedding_lanes < 1 or lanes % embedding_lanes:
            raise ValueError(f"embedding_lanes must divide lanes {lanes}, not {embedding_lanes!r}; "
                             f"{divisors(lanes)} would")
        self._table, self._lanes, self._words = table, lanes, hidden // lanes
        self._embedding_lanes = embedding_lanes
        self._vocab, self._hidden = vocab, hidden
        self._uses = (embedding, lm_head)
        word = data.ArrayLayout(signed(ACT_BITS), lanes)
        members = {}
        if embedding:
            members["token"] = In(stream.Signature(range(vocab)))
            members["embedding"] = Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(ACT_BITS), embedding_lanes),
                "scale": scale_layout(SCALE_EXP_BITS), "last": 1})))
        if lm_head:
            members["x"] = In(stream.Signature(data.StructLayout({"data": word, "last": 1})))
            members["logits"] = Out(stream.Signature(data.StructLayout({
                "logit": signed(self.logit_width), "last": 1})))
        super().__init__(members)

    vocab = property(lambda self: self._vocab)
    hidden = property(lambda self: self._hidden)
    lanes = property(lambda self: self._lanes)
    embedding_lanes = property(lambda self: self._embedding_lanes)
    words = property(lambda self: self._words)
    logit_width = property(lambda self: logit_width(self._hidden))

    def row_cycles(self) -> int:
        """Clock edges from a ``token`` transfer to its row's last ``embedding`` beat's, that
        ``embedding`` ready."""
        return self.row_cycles_of(self._hidden // self._embedding_lanes)

    @staticmethod
    def row_cycles_of(words: int) -> int:
        """:meth:`row_cycles` of a table ``words`` embedding beats a row (for a cycle model
        without a table): the token, a beat a cycle, the ROM read and its register."""
        return 2 + words

    def logit_cycles(self) -> int:
        """Clock edges from the last ``x`` beat's transfer to the last logit's, ``logits`` ready."""
        return self.logit_cycles_of(self._vocab, self._words)

    @staticmethod
    def logit_cycles_of(vocab: int, words: int) -> int:
        """:meth:`logit_cycles` of a table of ``vocab`` rows, ``words`` beats a row (for a cycle
        model without a table): a word a cycle, then eight stages: the ROM read, its word and x's
        registered, their products, the lane sum in two, the dot, its copy, the logit."""
        return vocab * words + 8

    def elaborate(self, platform):
        m = Module()
        lanes, words, vocab = self._lanes, self._words, self._vocab
        codes = np.asarray(self._table.codes).reshape(vocab * words, lanes)
        word = data.ArrayLayout(signed(ACT_BITS), lanes)
        m.submodules.codes = rom = memory.Memory(shape=word, depth=vocab * words,
                                                 init=codes.tolist())
        m.submodules.rows = rows = memory.Memory(shape=unsigned(SCALE_BITS), depth=vocab,
                                                 init=[int(r) for r in self._table.rows])
        embedding, lm_head = self._uses
        # Each use has its own read ports (a dual-port ROM when both are built): they may overlap.
        if embedding:
            self._embedding(m, rom.read_port(), rows.read_port())
        if lm_head:
            self._lm_head(m, rom.read_port(), rows.read_port())
        return m

    def _embedding(self, m, code_read, row_read):
        words, size = self._words, self._embedding_lanes
        parts = self._lanes // size                 # beats a ROM word
        token = Signal(range(self._vocab))
        word = Signal(range(words + 1))
        part = Signal(range(parts))
        # the ROM word read, token · words + word, kept in a register (made as the token is taken):
        # the product into the ROM's address was the 85F's slowest path asking 62.5 MHz
        address = Signal(range(self._vocab * words + 1))
        issue = Signal()
        # Stage 1 is the ROM read (a word read again for each of its parts); stage 2 (the output)
        # registers its part and the row's mantissa.
        out = self.embedding
        s1_valid, s1_last, s1_part = Signal(), Signal(), Signal(range(parts))
        advance = Signal()
        m.d.comb += [advance.eq(~out.valid | out.ready),
                     code_read.addr.eq(address), code_read.en.eq(advance),
                     row_read.addr.eq(token), row_read.en.eq(1),
                     out.payload.scale.exp.eq(self._table.exp)]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq((word == words - 1) & (part == parts - 1)),
                         s1_part.eq(part), out.valid.eq(s1_valid), out.payload.last.eq(s1_last),
                         out.payload.scale.mant.eq(row_read.data)]
            for p in range(parts):
                with m.If(s1_part == p):
                    m.d.sync += [out.payload.data[e].eq(code_read.data[p * size + e]) for e in range(size)]
            with m.If(issue):
                m.d.sync += part.eq(Mux(part == parts - 1, 0, part + 1))
                with m.If(part == parts - 1):
                    m.d.sync += [word.eq(word + 1), address.eq(address + 1)]
        with m.FSM(name="embedding_fsm"):
            with m.State("IDLE"):
                m.d.comb += self.token.ready.eq(1)
                with m.If(self.token.valid):
                    m.d.sync += [token.eq(self.token.payload), word.eq(0), part.eq(0),
                                 address.eq(self.token.payload * words)]
                    m.next = "ROW"
            with m.State("ROW"):
                m.d.comb += issue.eq(word < words)
                with m.If(self.embedding.valid & self.embedding.ready & self.embedding.payload.last):
                    m.next = "IDLE"

    def _lm_head(self, m, code_read, row_read):
        lanes, words, vocab = self._lanes, self._words, self._vocab
        word_layout = data.ArrayLayout(signed(ACT_BITS), lanes)
        # The vector x, a word of lanes codes per address, read back a word a cycle beside the table.
        m.submodules.x_words = x_words = memory.Memory(shape=word_layout, depth=words, init=[])
        x_write, x_read = x_words.write_port(), x_words.read_port()
        taken = Signal(range(words))
        address = Signal(range(vocab * words))         # the table word: v · words + word
        v, word = Signal(range(vocab + 1)), Signal(range(words))
        issue = Signal()
        # The logits leave through a skid buffer, and the pipeline advances on its registered
        # ready, not on the logits' ready: that stall, one LUT after the sampler's ready fanned
        # out to every stage's clock enable across the die, was the ULX3S-85F's slowest path
        # (59.5 MHz asking 60, 10.7 ns of its routing). The skid's output register is the logit's
        # stage 8, and the logits go to the sampler from it (the engine adds no skid of its own).
        m.submodules.logit_skid = logit_skid = SkidBuffer(self.logits.payload.shape())
        wiring.connect(m, logit_skid.o, wiring.flipped(self.logits))
        advance = Signal()
        m.d.comb += advance.eq(logit_skid.i.ready)
        m.d.comb += [x_write.addr.eq(taken), x_write.data.eq(self.x.payload.data),
                     x_read.addr.eq(word), x_read.en.eq(advance),
                     code_read.addr.eq(address), code_read.en.eq(advance),
                     row_read.addr.eq(v), row_read.en.eq(advance)]

        def flags(stage):
            return {n: Signal(name=f"head_s{stage}_{n}") for n in ("valid", "first", "last_word", "last_v")}

        # The datapath's registers are not reset (the stages' flags are): the reset net to the
        # products' registers was the 85F's slowest path asking 65 MHz (17.9 ns of routing).
        dot = Signal(signed(len(self.logits.payload.logit) - SCALE_BITS), reset_less=True)
        s1, s2, s3, s4, s5, s6, s7 = (flags(stage) for stage in range(1, 8))
        x_word = Signal(word_layout, name="head_s2_x", reset_less=True)
        code_word = Signal(word_layout, name="head_s2_codes", reset_less=True)
        products = [Signal(signed(2 * ACT_BITS), name=f"head_s3_product{lane}", reset_less=True)
                    for lane in range(lanes)]
        rows = [Signal(unsigned(SCALE_BITS), name=f"head_s{stage}_row", reset_less=True)
                for stage in range(2, 8)]
        # Stage 7: the dot copied beside the logit's multipliers (the running dot sits by its adder:
        # the route between them was the 45F's slowest path asking 60 MHz, 6.8 ns of 17.4).
        dot_copy = Signal.like(dot, name="head_s7_dot")
        # The lane sum: an adder tree split over two stages.
        levels = (lanes - 1).bit_length()
        half = _add_levels(products, (levels + 1) // 2)
        sums = [Signal(signed(value.shape().width), name=f"head_s4_sum{i}", reset_less=True)
                for i, value in enumerate(half)]
        lane_sum = _add_levels(sums, levels // 2)[0]
        lane_sum_reg = Signal(signed(lane_sum.shape().width), name="head_s5_sum", reset_less=True)
        with m.If(advance):
            m.d.sync += [s1["valid"].eq(issue), s1["first"].eq(word == 0),
                         s1["last_word"].eq(word == words - 1), s1["last_v"].eq(v == vocab - 1)]
            with m.If(issue):
                m.d.sync += address.eq(address + 1)
                with m.If(word == words - 1):
                    m.d.sync += [word.eq(0), v.eq(v + 1)]
                with m.Else():
                    m.d.sync += word.eq(word + 1)
            for before, after in zip((s1, s2, s3, s4, s5, s6), (s2, s3, s4, s5, s6, s7)):
                m.d.sync += [after[n].eq(before[n]) for n in after]
            # Stage 2 holds the ROM and x words, stage 3 their products, 4 and 5 the lane sum,
            # 6 the running dot, 7 its copy; a row's last word makes its logit, dot times its mantissa.
            m.d.sync += [x_word.eq(x_read.data), code_word.eq(code_read.data), rows[0].eq(row_read.data),
                         *(after.eq(before) for before, after in zip(rows, rows[1:])),
                         *(products[lane].eq(x_word[lane] * code_word[lane]) for lane in range(lanes)),
                         *(reg.eq(value) for reg, value in zip(sums, half)),
                         lane_sum_reg.eq(lane_sum)]
            with m.If(s5["valid"]):
                m.d.sync += dot.eq(Mux(s5["first"], 0, dot) + lane_sum_reg)
            m.d.sync += dot_copy.eq(dot)
        m.d.comb += [logit_skid.i.valid.eq(s7["valid"] & s7["last_word"]),
                     logit_skid.i.payload.last.eq(s7["last_v"]),
                     logit_skid.i.payload.logit.eq(dot_copy * rows[-1])]
        with m.FSM(name="lm_head_fsm"):
            with m.State("TAKE"):
                m.d.comb += [self.x.ready.eq(1), x_write.en.eq(self.x.valid)]
                with m.If(self.x.valid):
                    m.d.sync += taken.eq(Mux(self.x.payload.last, 0, taken + 1))
                    with m.If(self.x.payload.last):
                        m.d.sync += [v.eq(0), word.eq(0), address.eq(0)]
                        m.next = "LOGITS"
            with m.State("LOGITS"):
                m.d.comb += issue.eq(v < vocab)
                with m.If(self.logits.valid & self.logits.ready & self.logits.payload.last):
                    m.next = "TAKE"


def _add_levels(values, levels: int) -> list:
    """``values`` after ``levels`` levels of an adder tree (neighbours summed in pairs)."""
    for _ in range(levels):
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values
