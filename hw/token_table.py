"""The int8 token table (``model.integer.RowScaledInt8``) in on-chip ROM, used both ways
(docs/numerics.md §4, §8): as the **embedding** (a token's row into the residual stream) and as
the **LM head** (integer logits of a quantized vector). A tied model has one table for both; an
untied one instantiates two, one for each use.

- ``token`` → ``embedding``: the row's ``hidden`` int8 codes times the row's scale
  ``(rows_v, exp)``, ``saturate(apply_scale(codes_v, scale, 16), 32)``, through a
  :class:`~hw.dequantizer.Dequantizer`: ``lanes`` Q15.16 values per beat, ``last`` on the row's end.
- ``x`` (``lanes`` int8 codes per beat, ``last`` on the final beat) → ``logits``: once the vector is
  in, ``L_v = (codes_v · x) · rows_v`` for ``v = 0 … vocab−1`` in order, ``lanes`` products a cycle,
  ``last`` on the final logit.

ROM: ``vocab × hidden/lanes`` words of ``lanes`` int8 codes and ``vocab`` 16-bit row mantissas.
Cycles: a row in ``hidden/lanes + 4`` (:meth:`row_cycles`); the logits in ``vocab · hidden/lanes + 2``
(:meth:`logit_cycles`). Each use has its own ROM read ports (a tied table is one dual-port ROM),
so the two may overlap.
"""

import numpy as np
from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.integer import RowScaledInt8
from model.numerics import ACT_BITS, ACT_MAX, RES_BITS, SCALE_BITS

from .dequantizer import Dequantizer


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
        Codes per ROM word and per beat (divides hidden).
    embedding, lm_head : bool
        Which uses to build.
    """

    def __init__(self, table: RowScaledInt8, *, lanes: int, embedding: bool = True,
                 lm_head: bool = True):
        codes = np.asarray(table.codes)
        if codes.ndim != 2 or np.abs(codes).max(initial=0) > ACT_MAX:
            raise ValueError("table codes must be int8 values in a [vocab, hidden] array")
        vocab, hidden = codes.shape
        if not isinstance(lanes, int) or lanes < 1 or hidden % lanes:
            raise ValueError(f"lanes must divide hidden {hidden}, not {lanes!r}")
        if not (embedding or lm_head):
            raise ValueError("build at least one of embedding and lm_head")
        self._table, self._lanes, self._words = table, lanes, hidden // lanes
        self._vocab, self._hidden = vocab, hidden
        self._uses = (embedding, lm_head)
        word = data.ArrayLayout(signed(ACT_BITS), lanes)
        members = {}
        if embedding:
            members["token"] = In(stream.Signature(range(vocab)))
            members["embedding"] = Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(RES_BITS), lanes), "last": 1})))
        if lm_head:
            members["x"] = In(stream.Signature(data.StructLayout({"data": word, "last": 1})))
            members["logits"] = Out(stream.Signature(data.StructLayout({
                "logit": signed(self.logit_width), "last": 1})))
        super().__init__(members)

    vocab = property(lambda self: self._vocab)
    hidden = property(lambda self: self._hidden)
    lanes = property(lambda self: self._lanes)
    words = property(lambda self: self._words)
    logit_width = property(lambda self: logit_width(self._hidden))

    def row_cycles(self) -> int:
        """Clock edges from a ``token`` transfer to its row's last ``embedding`` beat's, that
        ``embedding`` ready."""
        return self.row_cycles_of(self._words)

    @staticmethod
    def row_cycles_of(words: int) -> int:
        """:meth:`row_cycles` of a table ``words`` beats a row (for a cycle model without a
        table): the token, a word a cycle (ROM read), the Dequantizer's latency."""
        return 1 + words + Dequantizer.latency_of()

    def logit_cycles(self) -> int:
        """Clock edges from the last ``x`` beat's transfer to the last logit's, ``logits`` ready."""
        return self.logit_cycles_of(self._vocab, self._words)

    @staticmethod
    def logit_cycles_of(vocab: int, words: int) -> int:
        """:meth:`logit_cycles` of a table of ``vocab`` rows, ``words`` beats a row (for a cycle
        model without a table): a word a cycle, two to finish."""
        return vocab * words + 2

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
        lanes, words = self._lanes, self._words
        m.submodules.dequantizer = dequantizer = Dequantizer(width=ACT_BITS, lanes=lanes)
        wiring.connect(m, wiring.flipped(self.embedding), dequantizer.o)
        token = Signal(range(self._vocab))
        word = Signal(range(words + 1))
        issue = Signal()
        s1_valid, s1_last = Signal(), Signal()
        advance = Signal()
        m.d.comb += [advance.eq(~s1_valid | dequantizer.i.ready),
                     code_read.addr.eq(token * words + word), code_read.en.eq(advance),
                     row_read.addr.eq(token), row_read.en.eq(1),
                     dequantizer.i.valid.eq(s1_valid), dequantizer.i.payload.last.eq(s1_last),
                     dequantizer.i.payload.data.eq(code_read.data),
                     dequantizer.scale.mant.eq(row_read.data),
                     dequantizer.scale.exp.eq(self._table.exp)]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq(word == words - 1)]
            with m.If(issue):
                m.d.sync += word.eq(word + 1)
        with m.FSM(name="embedding_fsm"):
            with m.State("IDLE"):
                m.d.comb += self.token.ready.eq(1)
                with m.If(self.token.valid):
                    m.d.sync += [token.eq(self.token.payload), word.eq(0)]
                    m.next = "ROW"
            with m.State("ROW"):
                m.d.comb += issue.eq(word < words)
                with m.If(self.embedding.valid & self.embedding.ready & self.embedding.payload.last):
                    m.next = "IDLE"

    def _lm_head(self, m, code_read, row_read):
        lanes, words, vocab = self._lanes, self._words, self._vocab
        x = [Signal(signed(ACT_BITS), name=f"x{i}") for i in range(self._hidden)]
        taken = Signal(range(words + 1))
        v, word = Signal(range(vocab + 1)), Signal(range(words))
        issue = Signal()
        advance = Signal()
        m.d.comb += advance.eq(~self.logits.valid | self.logits.ready)
        s1_valid, s1_first, s1_last_word, s1_last_v = (Signal(name=f"head_s1_{n}") for n in (
            "valid", "first", "last_word", "last_v"))
        s1_word = Signal(range(words), name="head_s1_word")
        m.d.comb += [code_read.addr.eq(v * words + word), code_read.en.eq(advance),
                     row_read.addr.eq(v), row_read.en.eq(advance)]
        dot = Signal(signed(len(self.logits.payload.logit) - SCALE_BITS))
        x_word = [Signal(signed(ACT_BITS), name=f"x_word{lane}") for lane in range(lanes)]
        with m.Switch(s1_word):
            for w in range(words):
                with m.Case(w):
                    m.d.comb += [x_word[lane].eq(x[w * lanes + lane]) for lane in range(lanes)]
        products = sum(x_word[lane] * code_read.data[lane] for lane in range(lanes))
        partial = Mux(s1_first, 0, dot) + products
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_word.eq(word), s1_first.eq(word == 0),
                         s1_last_word.eq(word == words - 1), s1_last_v.eq(v == vocab - 1)]
            with m.If(issue):
                with m.If(word == words - 1):
                    m.d.sync += [word.eq(0), v.eq(v + 1)]
                with m.Else():
                    m.d.sync += word.eq(word + 1)
            with m.If(s1_valid):
                m.d.sync += dot.eq(partial)
            # A row's last word: its dot times its mantissa (read with the word) is the logit.
            m.d.sync += [self.logits.valid.eq(s1_valid & s1_last_word),
                         self.logits.payload.last.eq(s1_last_v),
                         self.logits.payload.logit.eq(partial * row_read.data)]
        with m.FSM(name="lm_head_fsm"):
            with m.State("TAKE"):
                m.d.comb += self.x.ready.eq(1)
                with m.If(self.x.valid):
                    with m.Switch(taken):
                        for w in range(words):
                            with m.Case(w):
                                m.d.sync += [x[w * lanes + lane].eq(self.x.payload.data[lane])
                                             for lane in range(lanes)]
                    m.d.sync += taken.eq(Mux(self.x.payload.last, 0, taken + 1))
                    with m.If(self.x.payload.last):
                        m.d.sync += [v.eq(0), word.eq(0)]
                        m.next = "LOGITS"
            with m.State("LOGITS"):
                m.d.comb += issue.eq(v < vocab)
                with m.If(self.logits.valid & self.logits.ready & self.logits.payload.last):
                    m.next = "TAKE"
