"""Next-token choice from the LM head's integer logits, exactly ``model.integer.sample``
(docs/numerics.md §8): greedy argmax, or seeded sampling with temperature and top-k.

The logits ``L_v`` of one position arrive on ``i`` in vocabulary order, one per beat, ``last`` on the
final one; the chosen token leaves on ``o``.

- **Greedy** (``greedy`` high): the first index of ``max L_v``, known as the last logit arrives.
- **Sampling**: pass 1 takes the logits and writes ``z_v = apply_scale(L_v, coef, 8)`` (``coef`` is the
  scale ``logit_scale · log2(e)/T``, one ScaleUnit MUL per token) to a buffer, tracking ``max z`` and
  the ``top_k`` largest ``(z, v)`` in a sorted insertion array (ties to the lower index), so the k-th
  of them is the threshold of the kept set. The generator state advances once by xorshift32. Pass 2
  reads ``z`` back and sums ``p_v = EXP2[δ & 255] >> (δ >> 8)`` (``δ = max z − z_v``; 0 outside the
  kept set or for ``δ >> 8 > 15``) from a 256-entry table; then ``t = (state · Σp) >> 32``. Pass 3
  reads ``z`` again and stops at the first ``v`` whose running sum of ``p`` exceeds ``t``.

``top_k = 0`` keeps every token; ``top_k`` above ``k_max`` or more than ``vocab_max`` logits set
``o.payload.invalid`` (and token 0).
Where ``coef``'s exponent is above −8 (``coef`` ≥ 128: a temperature far below any use) numerics
shifts the product ``L·mant`` left; the sampler does not, and chooses the same token: for a
normalized ``coef`` (mantissa ≥ 2^15, as every ScaleUnit result) distinct logits are then at least
2^15 apart in ``z``, beyond the table's 16·2^8 (``p = 0``), with or without the shift, and equal
logits stay equal. ``seed_load`` (while idle) sets the state from ``seed``: its low 32 bits, or 1 if
those are 0. ``greedy``, ``coef`` and ``top_k`` must hold from a position's first logit to its token.

Cycles from the last logit's transfer to the token being valid (:meth:`cycles`): 2 for greedy;
for sampling ``1 + (V + 3)`` (pass 2) ``+ 1`` (threshold) ``+ (v + 3)`` (pass 3 up to the chosen
``v``), that is ``V + v + 8``.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import EXP2_TABLE, EXP_FRAC, EXP_TABLE_BITS, SCALE_EXP_BITS, SCORE_FRAC, XORSHIFT_BITS

from .arith import check_integers, rounded_right_shift
from .scale_unit import scale_layout


def xorshift32(state):
    """Amaranth expression for one step of xorshift32 (13, 17, 5) on a 32-bit value."""
    mask = (1 << XORSHIFT_BITS) - 1
    s1 = state ^ ((state << 13) & mask)
    s2 = s1 ^ (s1 >> 17)
    return (s2 ^ ((s2 << 5) & mask))[:XORSHIFT_BITS]


class Sampler(wiring.Component):
    """Greedy argmax or seeded top-k sampling over one position's logits
    (``model.integer.sample``); :meth:`cycles` from the last logit to the token.

    Parameters
    ----------
    logit_width : int
        Signed width of the integer logits (8 to 48 bits).
    vocab_max : int
        Largest vocabulary (the z buffer's depth).
    k_max : int
        Largest top-k (entries of the insertion array; 1 to 64).
    exp_bits : int
        Exponent width of ``coef``.
    """

    def __init__(self, *, logit_width: int = 40, vocab_max: int, k_max: int = 32, exp_bits: int = SCALE_EXP_BITS):
        check_integers((("logit_width", logit_width, 8, 48),
                        ("vocab_max", vocab_max, 2, 1 << 20),
                        ("k_max", k_max, 1, 64)))
        self._logit_width, self._vocab_max, self._k_max = logit_width, vocab_max, k_max
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"logit": signed(logit_width), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"token": range(vocab_max), "invalid": 1}))),
            "greedy": In(1), "coef": In(scale_layout(exp_bits)), "top_k": In(range(k_max + 1)),
            "seed": In(XORSHIFT_BITS), "seed_load": In(1),
        })

    logit_width = property(lambda self: self._logit_width)
    vocab_max = property(lambda self: self._vocab_max)
    k_max = property(lambda self: self._k_max)
    z_bits = property(lambda self: self.z_bits_of(self._logit_width))

    @staticmethod
    def z_bits_of(logit_width: int) -> int:
        """:attr:`z_bits` for ``logit_width``-bit logits (a logit times a 16-bit mantissa)."""
        return logit_width + 17

    def cycles(self, vocab: int, token: int, greedy: bool) -> int:
        """Clock edges from the last of ``vocab`` logits to ``token`` being valid (see the module
        docstring)."""
        return self.cycles_of(vocab, token, greedy)

    @staticmethod
    def cycles_of(vocab: int, token: int, greedy: bool) -> int:
        """:meth:`cycles` without a sampler (it does not depend on the widths)."""
        return 2 if greedy else vocab + token + 8

    def elaborate(self, platform):
        m = Module()
        z_bits, vocab_max, k_max = self.z_bits, self._vocab_max, self._k_max
        z_shape = signed(z_bits)
        sum_bits = EXP_FRAC + 1 + vocab_max.bit_length()

        m.submodules.z_buffer = z_buffer = memory.Memory(shape=z_shape, depth=vocab_max, init=[])
        z_write, z_read = z_buffer.write_port(), z_buffer.read_port()
        m.submodules.exp2 = exp2 = memory.Memory(shape=unsigned(EXP_FRAC + 1), depth=len(EXP2_TABLE),
                                                 init=[int(v) for v in EXP2_TABLE])
        exp2_read = exp2.read_port()

        state = Signal(XORSHIFT_BITS, init=1)
        count = Signal(range(vocab_max + 1))          # logits taken
        best_logit = Signal(signed(self._logit_width))
        best_index = Signal(range(vocab_max))
        z_max = Signal(z_shape)
        invalid = Signal()
        token = Signal(range(vocab_max))

        # -- z = apply_scale(L, coef, 8): round half up where the product shifts right ----------
        logit = self.i.payload.logit
        product = Signal(signed(self._logit_width + 17))
        m.d.comb += product.eq(logit * self.coef.mant)
        shift = Signal(signed(len(self.coef.exp) + 2))   # right shift -(exp + 8)
        m.d.comb += shift.eq(-(self.coef.exp + SCORE_FRAC))
        # not shifted left where numerics would: see the module docstring
        z_in = rounded_right_shift(m, product, shift, "z_in")

        # -- the top-k insertion array: entries sorted by z descending, then index ------------
        entry_z = [Signal(z_shape, name=f"top_z{k}") for k in range(k_max)]
        entry_v = [Signal(range(vocab_max), name=f"top_v{k}") for k in range(k_max)]
        entry_ok = [Signal(name=f"top_ok{k}") for k in range(k_max)]
        stays = [entry_ok[k] & (entry_z[k] >= z_in) for k in range(k_max)]   # ahead of the new one

        def insert():
            for k in range(k_max):
                with m.If(~stays[k]):
                    if k == 0:
                        m.d.sync += [entry_z[0].eq(z_in), entry_v[0].eq(count), entry_ok[0].eq(1)]
                    else:
                        with m.If(stays[k - 1]):
                            m.d.sync += [entry_z[k].eq(z_in), entry_v[k].eq(count), entry_ok[k].eq(1)]
                        with m.Else():
                            m.d.sync += [entry_z[k].eq(entry_z[k - 1]), entry_v[k].eq(entry_v[k - 1]),
                                         entry_ok[k].eq(entry_ok[k - 1])]

        # The kept set's last member (top_k > 0): (z, v) kept iff z > z_k or (z == z_k and v <= v_k).
        kth_z, kth_v, kth_ok = Signal(z_shape), Signal(range(vocab_max)), Signal()
        with m.Switch(self.top_k):
            for k in range(1, k_max + 1):
                with m.Case(k):
                    m.d.comb += [kth_z.eq(entry_z[k - 1]), kth_v.eq(entry_v[k - 1]),
                                 kth_ok.eq(entry_ok[k - 1])]

        # -- passes 2 and 3: address -> z (memory) -> table (memory) -> p -----------------------
        scan_addr = Signal(range(vocab_max + 1))
        scan_on = Signal()
        s1_valid, s1_index = Signal(), Signal(range(vocab_max))
        s2_valid, s2_index, s2_whole, s2_member = Signal(), Signal(range(vocab_max)), Signal(5), Signal()
        m.d.comb += [z_read.addr.eq(scan_addr), z_read.en.eq(1)]
        delta = Signal(unsigned(z_bits + 1))
        m.d.comb += delta.eq(z_max - z_read.data)
        kept = (self.top_k == 0) | ~kth_ok | (z_read.data > kth_z) | \
            ((z_read.data == kth_z) & (s1_index <= kth_v))
        m.d.comb += [exp2_read.addr.eq(delta[:EXP_TABLE_BITS]), exp2_read.en.eq(1)]
        far = delta[SCORE_FRAC:] > EXP_FRAC
        m.d.sync += [s1_valid.eq(scan_on), s1_index.eq(scan_addr[:len(s1_index)]),
                     s2_valid.eq(s1_valid), s2_index.eq(s1_index),
                     s2_whole.eq(delta[SCORE_FRAC:SCORE_FRAC + 4]), s2_member.eq(s1_valid & kept & ~far)]
        p = Signal(EXP_FRAC + 1)
        m.d.comb += p.eq(Mux(s2_member, exp2_read.data >> s2_whole, 0))
        total = Signal(sum_bits)
        running = Signal(sum_bits)
        threshold = Signal(sum_bits)

        def scan():
            """Passes 2 and 3: issue the next stored z while any is left."""
            m.d.comb += scan_on.eq(scan_addr < count)
            with m.If(scan_on):
                m.d.sync += scan_addr.eq(scan_addr + 1)

        with m.FSM():
            with m.State("TAKE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.seed_load & (count == 0)):
                    m.d.sync += state.eq(Mux(self.seed == 0, 1, self.seed))
                with m.If(self.i.valid):
                    in_range = count < vocab_max
                    with m.If(in_range):
                        m.d.comb += [z_write.addr.eq(count), z_write.data.eq(z_in), z_write.en.eq(1)]
                        m.d.sync += count.eq(count + 1)
                        insert()
                        with m.If((count == 0) | (logit > best_logit)):
                            m.d.sync += [best_logit.eq(logit), best_index.eq(count)]
                        with m.If((count == 0) | (z_in > z_max)):
                            m.d.sync += z_max.eq(z_in)
                    with m.Else():
                        m.d.sync += invalid.eq(1)
                    with m.If(self.i.payload.last):
                        with m.If(self.greedy):
                            m.next = "GREEDY"
                        with m.Else():
                            m.d.sync += [state.eq(xorshift32(state)), scan_addr.eq(0), total.eq(0)]
                            m.next = "SUM"
            with m.State("GREEDY"):
                m.d.sync += token.eq(best_index)
                m.next = "DONE"
            with m.State("SUM"):
                scan()
                with m.If(s2_valid):
                    m.d.sync += total.eq(total + p)
                with m.If(~scan_on & ~s1_valid & ~s2_valid):
                    m.next = "THRESHOLD"
            with m.State("THRESHOLD"):
                m.d.sync += [threshold.eq((state * total) >> XORSHIFT_BITS), scan_addr.eq(0),
                             running.eq(0)]
                with m.If((self.top_k > k_max) | invalid):
                    m.d.sync += invalid.eq(1)
                    m.next = "DONE"
                with m.Else():
                    m.next = "PICK"
            with m.State("PICK"):
                scan()
                with m.If(s2_valid):
                    m.d.sync += running.eq(running + p)
                    with m.If(running + p > threshold):
                        m.d.sync += token.eq(s2_index)
                        m.next = "DONE"     # the scan pipeline empties before the next SUM
            with m.State("DONE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.token.eq(Mux(invalid, 0, token)),
                             self.o.payload.invalid.eq(invalid)]
                with m.If(self.o.ready):
                    m.d.sync += [count.eq(0), invalid.eq(0)] + \
                        [entry_ok[k].eq(0) for k in range(k_max)]
                    m.next = "TAKE"
        return m
