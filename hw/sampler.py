"""Next-token choice from the LM head's integer logits, exactly ``model.integer.sample``
(docs/numerics.md §8): greedy argmax, or seeded sampling with temperature and top-k.

The logits ``L_v`` of one position arrive on ``i`` in vocabulary order, one per beat, ``last`` on the
final one; the chosen token leaves on ``o``.

- **Greedy** (``greedy`` high): the first index of ``max L_v``, known as the last logit arrives.
- **Sampling**: pass 1 takes the logits and writes ``z_v = apply_scale(L_v, coef, 8)`` (``coef`` is
  the scale ``logit_scale · log2(e)/T``, one ScaleUnit MUL per token) to a buffer through a pipeline
  (operands, product, shift, write), keeping ``max z``: the z of the first largest logit, as z rises
  with L. The generator state advances once by xorshift32. Pass 2 reads z back as
  ``δ = max z − z_v``: near where ``δ < 16·2^8``; a far z has ``p = 0`` and ranks behind every near
  one, so it neither counts nor moves the kept set. The near ``(δ, v)`` go through a sorted
  insertion array of 13-bit δ (ties to the lower index) that holds the ``top_k`` smallest in its
  last entries, the k-th in the last; ``Σp`` adds ``p_v = EXP2[δ & 255] >> (δ >> 8)`` (a 256-entry
  table) for each v entering the kept set and subtracts ``p`` of the k-th it pushes out. Then
  ``t = (state · Σp) >> 32``. Pass 3 reads z again and stops at the first ``v`` whose running sum of
  ``p`` over the kept set (``(δ, v)`` up to the k-th's) exceeds ``t``.

``top_k = 0`` keeps every token; ``top_k`` above ``k_max`` or more than ``vocab_max`` logits set
``o.payload.invalid`` (and token 0).
Where ``coef``'s exponent is above −8 (``coef`` ≥ 128: a temperature far below any use) numerics
shifts the product ``L·mant`` left; the sampler does not, and chooses the same token: for a
normalized ``coef`` (mantissa ≥ 2^15, as every ScaleUnit result) distinct logits are then at least
2^15 apart in ``z``, beyond the table's 16·2^8 (``p = 0``), with or without the shift, and equal
logits stay equal. ``seed_load`` (while idle) sets the state from ``seed``: its low 32 bits, or 1 if
those are 0. ``greedy``, ``coef`` and ``top_k`` must hold from a position's first logit to its token.

Cycles from the last logit's transfer to the token being valid (:meth:`cycles`): 2 for greedy;
for sampling ``5`` (the last z through pass 1's pipeline: operands, the product's two parts,
their sum, the shift) ``+ (V + 5)`` (pass 2 through the read, δ, table and k-th's table stages)
``+ (v + 5)`` (pass 3, issued while the sum and threshold form, up to the chosen ``v``'s p and the
token), that is ``V + v + 15``.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import EXP2_TABLE, EXP_FRAC, EXP_TABLE_BITS, SCALE_EXP_BITS, SCORE_FRAC, XORSHIFT_BITS

from .arith import check_integers
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
        return 2 if greedy else vocab + token + 15

    def elaborate(self, platform):
        m = Module()
        z_bits, vocab_max, k_max = self.z_bits, self._vocab_max, self._k_max
        z_shape = signed(z_bits)
        sum_bits = EXP_FRAC + 1 + vocab_max.bit_length()
        far_from = (EXP_FRAC + 1) << SCORE_FRAC          # δ from here on has p = 0 (δ >> 8 > 15)
        delta_bits = (far_from - 1).bit_length()          # a near δ; one bit more flags "far"

        m.submodules.z_buffer = z_buffer = memory.Memory(shape=z_shape, depth=vocab_max, init=[])
        z_write, z_read = z_buffer.write_port(), z_buffer.read_port()
        m.submodules.exp2 = exp2 = memory.Memory(shape=unsigned(EXP_FRAC + 1), depth=len(EXP2_TABLE),
                                                 init=[int(v) for v in EXP2_TABLE])
        exp2_read, exp2_evicted_read = exp2.read_port(), exp2.read_port()

        state = Signal(XORSHIFT_BITS, init=1)
        count = Signal(range(vocab_max + 1))          # logits taken
        best_logit = Signal(signed(self._logit_width))
        best_index = Signal(range(vocab_max))
        z_max = Signal(z_shape)
        invalid = Signal()
        token = Signal(range(vocab_max))

        # -- pass 1: z = apply_scale(L, coef, 8) in three stages (operands, product, shift), then
        # the buffer write; z_max is the z of the first largest logit (z rises with L) --------------
        logit = self.i.payload.logit
        taken = Signal()                              # a logit within vocab_max transferred
        new_best = (count == 0) | (logit > best_logit)
        mul_valid, mul_index, mul_best = Signal(), Signal(range(vocab_max)), Signal()
        mul_logit, mul_mant = Signal.like(logit), Signal.like(self.coef.mant)
        m.d.sync += [mul_valid.eq(taken), mul_index.eq(count), mul_best.eq(new_best),
                     mul_logit.eq(logit), mul_mant.eq(self.coef.mant)]
        # the product in two registered parts (the logit's low 17 bits and the rest, each times the
        # mantissa: a multiplier block or two each), then their sum: one product and its adders in
        # one stage was the ULX3S-85F's slowest path
        part_valid, part_index, part_best = Signal(), Signal(range(vocab_max)), Signal()
        low = min(17, len(mul_logit) - 1)
        low_part = Signal(low + len(mul_mant))
        high_part = Signal(signed(len(mul_logit) - low + len(mul_mant) + 1))
        m.d.sync += [part_valid.eq(mul_valid), part_index.eq(mul_index), part_best.eq(mul_best),
                     low_part.eq(mul_logit[:low] * mul_mant),
                     high_part.eq(mul_logit[low:].as_signed() * mul_mant)]
        product_valid, product_index, product_best = Signal(), Signal(range(vocab_max)), Signal()
        product = Signal(signed(self._logit_width + 17))
        m.d.sync += [product_valid.eq(part_valid), product_index.eq(part_index), product_best.eq(part_best),
                     product.eq((high_part << low) + low_part)]
        # rshift_round(product, shift) for shift = −(exp + 8) > 0 is ((product >> (shift − 1)) + 1) >> 1,
        # with the barrel shift clamped one bit past the product (hw.arith.rounded_right_shift, here
        # in two stages), that is ((2·product >> shift) + 1) >> 1, which with no shift (shift ≤ 0) is
        # the product itself; not shifted left where numerics would: see the module docstring
        shift = Signal(signed(len(self.coef.exp) + 2))
        m.d.comb += shift.eq(-(self.coef.exp + SCORE_FRAC))
        right = Signal(range(len(product) + 2))
        m.d.sync += right.eq(Mux(shift > 0, Mux(shift > len(product) + 1, len(product) + 1, shift), 0))
        shifted_valid, shifted_index, shifted_best = Signal(), Signal(range(vocab_max)), Signal()
        shifted = Signal(signed(len(product) + 1))
        m.d.sync += [shifted_valid.eq(product_valid), shifted_index.eq(product_index),
                     shifted_best.eq(product_best), shifted.eq((product << 1) >> right)]
        z_in = Signal(z_shape)
        m.d.comb += [z_in.eq((shifted + 1) >> 1),
                     z_write.addr.eq(shifted_index), z_write.data.eq(z_in), z_write.en.eq(shifted_valid)]
        with m.If(shifted_valid & shifted_best):
            m.d.sync += z_max.eq(z_in)

        # -- passes 2 and 3: address -> z (memory) -> register -> δ and the table read -> p ---------
        scan_addr = Signal(range(vocab_max + 1))
        scan_on = Signal()
        m.d.comb += [z_read.addr.eq(scan_addr), z_read.en.eq(1)]
        read_valid, read_index = Signal(), Signal(range(vocab_max))
        m.d.sync += [read_valid.eq(scan_on), read_index.eq(scan_addr[:len(read_index)])]
        z_valid, z_index, z_stored = Signal(), Signal(range(vocab_max)), Signal(z_shape)
        m.d.sync += [z_valid.eq(read_valid), z_index.eq(read_index), z_stored.eq(z_read.data)]
        # δ = z_max − z (≥ 0): its low bits where it is below 16·2^8, the top bit set where it is not
        difference = Signal(z_bits + 1)
        m.d.comb += [difference.eq(z_max - z_stored),
                     exp2_read.addr.eq(difference[:EXP_TABLE_BITS]), exp2_read.en.eq(1)]
        delta_valid, delta_index, delta = Signal(), Signal(range(vocab_max)), Signal(delta_bits + 1)
        m.d.sync += [delta_valid.eq(z_valid), delta_index.eq(z_index),
                     delta.eq(Cat(difference[:delta_bits], difference[delta_bits:].any()))]
        near = delta_valid & ~delta[delta_bits]

        # -- the top-k insertion array over near δ: the kept set sorted by δ ascending, then index,
        # in its last top_k entries (the k-th, the kept set's last member, is always the last entry);
        # an empty entry has its top bit set, above every near δ ----------------------------------
        entry_d = [Signal(delta_bits + 1, init=far_from, name=f"top_d{k}") for k in range(k_max)]
        entry_v = [Signal(range(vocab_max), name=f"top_v{k}") for k in range(k_max)]
        entry_on = [Signal(name=f"top_on{k}") for k in range(k_max)]     # one of the last top_k
        m.d.sync += [entry_on[k].eq(self.top_k >= k_max - k) for k in range(k_max)]
        stays = [~entry_on[k] | (entry_d[k] <= delta) for k in range(k_max)]   # ahead of the new one
        kth_d, kth_v = entry_d[-1], entry_v[-1]

        def insert():
            with m.If(near):
                for k in range(k_max):
                    with m.If(~stays[k]):
                        if k == 0:
                            m.d.sync += [entry_d[0].eq(delta), entry_v[0].eq(delta_index)]
                        else:
                            m.d.sync += [entry_d[k].eq(Mux(stays[k - 1], delta, entry_d[k - 1])),
                                         entry_v[k].eq(Mux(stays[k - 1], delta_index, entry_v[k - 1]))]

        # -- p = EXP2[δ & 255] >> (δ >> 8) of δ and, in pass 2, of the k-th before the insertion
        # (which leaves the kept set where the new one enters it), one stage later ----------------
        picking = Signal()
        kept = (delta < kth_d) | ((delta == kth_d) & (delta_index <= kth_v))
        enters = (self.top_k == 0) | ~stays[-1]
        m.d.comb += [exp2_evicted_read.addr.eq(kth_d[:EXP_TABLE_BITS]), exp2_evicted_read.en.eq(1)]
        p_valid, adds, add_index, p = Signal(), Signal(), Signal(range(vocab_max)), Signal(EXP_FRAC + 1)
        evicts, evicted_whole = Signal(), Signal(delta_bits - SCORE_FRAC)
        m.d.sync += [p_valid.eq(delta_valid), adds.eq(near & Mux(picking, kept, enters)),
                     add_index.eq(delta_index),
                     p.eq(exp2_read.data >> delta[SCORE_FRAC:delta_bits]),
                     evicts.eq(near & ~picking & enters & ~kth_d[delta_bits]),
                     evicted_whole.eq(kth_d[SCORE_FRAC:delta_bits])]
        evicted, p_evicted = Signal(), Signal(EXP_FRAC + 1)
        m.d.sync += [evicted.eq(evicts), p_evicted.eq(exp2_evicted_read.data >> evicted_whole)]
        total_added, total_evicted, total = Signal(sum_bits), Signal(sum_bits), Signal(sum_bits)
        # state · Σp as two products of its halves (each a multiplier and its own adder):
        # (state · Σp) >> 32 = (high + (low >> 16)) >> 16
        half = XORSHIFT_BITS // 2
        threshold_low, threshold_high = Signal(half + sum_bits), Signal(half + sum_bits)
        remaining = Signal(sum_bits)                  # the threshold less the running sum of p
        left = Signal(signed(sum_bits + 1))
        m.d.comb += left.eq(remaining - p)

        def issue():
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
                    with m.If(count < vocab_max):
                        m.d.comb += taken.eq(1)
                        m.d.sync += count.eq(count + 1)
                        with m.If(new_best):
                            m.d.sync += [best_logit.eq(logit), best_index.eq(count)]
                    with m.Else():
                        m.d.sync += invalid.eq(1)
                    with m.If(self.i.payload.last):
                        with m.If(self.greedy):
                            m.next = "GREEDY"
                        with m.Else():
                            m.d.sync += [state.eq(xorshift32(state)), scan_addr.eq(0),
                                         total_added.eq(0), total_evicted.eq(0)]
                            m.next = "FLUSH"
            with m.State("GREEDY"):
                m.d.sync += token.eq(best_index)
                m.next = "DONE"
            with m.State("FLUSH"):
                with m.If(~mul_valid & ~part_valid & ~product_valid):   # the last z is written, z_max final
                    m.next = "SUM"
            with m.State("SUM"):
                issue()
                insert()
                with m.If(adds):
                    m.d.sync += total_added.eq(total_added + p)
                with m.If(evicted):
                    m.d.sync += total_evicted.eq(total_evicted + p_evicted)
                with m.If(~scan_on & ~read_valid & ~z_valid & ~delta_valid & ~p_valid):
                    m.d.sync += scan_addr.eq(0)
                    m.next = "TOTAL"
            with m.State("TOTAL"):                        # pass 3 issues from here on
                issue()
                m.d.sync += total.eq(total_added - total_evicted)
                m.next = "THRESHOLD"
            with m.State("THRESHOLD"):
                issue()
                m.d.sync += [threshold_low.eq(state[:half] * total),
                             threshold_high.eq(state[half:] * total)]
                with m.If((self.top_k > k_max) | invalid):
                    m.d.sync += invalid.eq(1)
                    m.next = "DONE"
                with m.Else():
                    m.next = "REMAINING"
            with m.State("REMAINING"):
                issue()
                m.d.sync += remaining.eq((threshold_high + (threshold_low >> half)) >> half)
                m.next = "PICK"
            with m.State("PICK"):
                m.d.comb += picking.eq(1)
                issue()
                with m.If(adds):
                    with m.If(left < 0):                  # the running sum of p passes the threshold
                        m.d.sync += token.eq(add_index)
                        m.next = "DONE"                   # the scan empties before the next pass 2
                    with m.Else():
                        m.d.sync += remaining.eq(left)
            with m.State("DONE"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.token.eq(Mux(invalid, 0, token)),
                             self.o.payload.invalid.eq(invalid)]
                with m.If(self.o.ready):
                    m.d.sync += [count.eq(0), invalid.eq(0)] + \
                        [entry_d[k][delta_bits].eq(1) for k in range(k_max)]
                    m.next = "TAKE"
        return m
