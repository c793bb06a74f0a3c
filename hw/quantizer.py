"""Per-token int8 absmax quantizer, exactly ``model.numerics.absmax_quantize`` (docs/numerics.md §2).

A token arrives on ``i`` as beats of ``lanes`` signed ``width``-bit values, ``last`` on its final beat.
The quantizer stores each beat as magnitudes and signs while tracking ``m = max|u|`` (the beat's
maximum by a tree of comparators with a register after every level, :func:`~hw.arith.pipelined_max`:
:func:`~hw.arith.tree_stages` stages for the lanes, then the running maximum), then

1. normalizes ``m`` to 17 magnitude bits (``m_n``, leading one at bit 16: one priority encoder and
   shifter),
2. computes ``R = ceil(2^33 / m_n) = floor((2^33 − 1) / m_n) + 1`` with a restoring divider of the
   constant ``2^33 − 1``, two quotient bits a cycle (9 cycles), and the increment in a register,
3. reads the token back and emits ``q = sign(u)·((|u_n|·R·127 + 2^32) >> 33)`` per lane, where
   ``|u_n|`` is ``|u|`` normalized by the same shift (truncating): one 17×18-bit multiply per lane,
   ``·127`` as ``(p << 7) − p``, the sign applied in the output register.

``o`` carries the codes, ``last``, and ``peak = m`` (the per-token scale the dequant needs; 0 for an
all-zero token, whose codes are all 0).

For ECP5 timing each of these ends in a register of its own: the input magnitudes, every
comparator level of the tree (one carry chain a stage), the running maximum, every two divider
steps, the block RAM's read data, the shift, the product, the rounding add and the sign.

Latency: the first output beat is presented :attr:`latency` cycles after the token's last input
beat is accepted. Throughput: one beat per cycle in, then one beat per cycle out. With one bank
(``banks=1``) a token of ``b`` beats occupies the quantizer for about ``2b + latency`` cycles (input
is not accepted while a token is being divided and emitted); with two, the next token is stored in
the other bank meanwhile (input waits only while both banks hold a token: one loaded, one being
divided and emitted). Tokens longer than ``max_length`` elements are cut at ``max_length`` (the rest
of the token is accepted and dropped) and ``overflow`` is raised for that token.

With no bank (``banks=0``) nothing is stored: the client sends each token twice, the same beats
both times. The first pass is measured (the peak, then the division); the second is taken once the
reciprocal is ready, one beat a cycle as ``o`` takes codes, and quantized on its way through (its
magnitudes registered in place of the read data). A client that can replay its token (RmsQuantizer
reads its own buffer again) saves the quantizer's buffer this way; :attr:`latency` is then from the
first pass's last beat to the first code, with the second pass offered as soon as it is taken.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS, NORM_MAX_BITLEN, RECIP_SHIFT

from .arith import (bank_address, bit_length_tree, check_integers, pipeline_drained, pipelined_max, read_pass,
                    register_sign_magnitude, sign_magnitude, sign_magnitude_beat, store_beat, tree_stages)

QUOTIENT_BITS = RECIP_SHIFT - NORM_MAX_BITLEN + 2   # R = floor((2^33 − 1) / m_n) + 1 <= 2^17: 18 bits
assert QUOTIENT_BITS % 2 == 0                        # the divider makes two bits a cycle
MAX_LANES = 64


class AbsmaxQuantizer(wiring.Component):
    """Per-token int8 absmax codes (``model.numerics.absmax_quantize``): stores a token while
    tracking its peak, then one reciprocal and a multiply a lane; :attr:`latency` cycles from a
    token's last beat to its first codes. ``overflow`` is high from the end of a token longer than
    ``max_length`` until the next token starts.

    Parameters
    ----------
    width : int
        Signed input width (2 to 48 bits).
    lanes : int
        Elements per beat (1 to 64).
    max_length : int
        Longest token in elements (each bank holds ``ceil(max_length / lanes)`` beats).
    banks : int
        Tokens held: 1, 2 to store the next token while one is divided and emitted, or 0 to store
        none (each token is sent twice: measured, then quantized).
    """

    def __init__(self, *, width: int, lanes: int = 1, max_length: int, banks: int = 1):
        check_integers((("width", width), ("lanes", lanes), ("max_length", max_length),
                        ("banks", banks, 0, 2)))
        if not 2 <= width <= 48:
            raise ValueError(f"width must be between 2 and 48 bits, not {width}")
        if lanes > MAX_LANES:
            raise ValueError(f"lanes must be at most {MAX_LANES}, not {lanes}")
        self._width, self._lanes, self._banks = width, lanes, banks
        self._depth = -(-max_length // lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(width), lanes), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(ACT_BITS), lanes), "peak": unsigned(width),
                "last": 1}))),
            "overflow": Out(1),
        })
        # in EMIT, and a beat in the emit pipeline (for the proofs: tests/hw/test_formal.py)
        self.emitting, self.in_flight = Signal(), Signal()
        # and for a client's proofs (the RmsQuantizer's, with no bank): the load side holds a whole
        # token, the divider's step, the token's beats, the second pass's beats taken and its last
        # beat taken; ``fsm`` once elaborated (its ``state`` register and ``encoding``)
        self.load_done = Signal(name="load_done")
        self.step = Signal(range(QUOTIENT_BITS), name="step")
        self.length = Signal(range(self._depth + 1), name="length")
        self.read_addr = Signal(range(self._depth + 1), name="read_addr")
        self.replayed = Signal(name="replayed")
        self.fsm = None

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)
    banks = property(lambda self: self._banks)

    @staticmethod
    def latency_of(lanes: int, banks: int = 1) -> int:
        """Cycles from a token's last input beat to its first code at ``lanes`` lanes: magnitudes,
        the maximum tree and the running maximum (``tree_stages(lanes) + 2``), the shift and
        ``m_n`` (2), divide (two quotient bits a cycle), then issue the read, memory, register,
        normalize, multiply, round and sign into the output register (6); with no bank the
        second pass's beat is taken and registered in place of the read (5)."""
        return tree_stages(lanes) + 2 + 2 + QUOTIENT_BITS // 2 + (6 if banks else 5)

    latency = property(lambda self: self.latency_of(self._lanes, self._banks))

    @staticmethod
    def reload_of(lanes: int) -> int:
        """With two banks, cycles from a token's last input beat to the next token's first beat
        taken (the other bank free): magnitudes, the maximum tree and the running maximum, then the
        token moves on to its division and the load side is free."""
        return tree_stages(lanes) + 3

    def elaborate(self, platform):
        m = Module()
        width, lanes = self._width, self._lanes
        field = max(width, NORM_MAX_BITLEN)       # shifter field: the leading one goes to its top

        entry = sign_magnitude(width)
        replay = self._banks == 0             # no buffer: each token comes twice
        wr = rd = None
        if not replay:
            buffer = memory.Memory(shape=data.ArrayLayout(entry, lanes), depth=self._banks * self._depth,
                                   init=[])
            m.submodules.buffer = buffer
            wr = buffer.write_port()
            rd = buffer.read_port()

        # the token being stored (load side) and the one being divided and emitted
        load_peak, peak = Signal(unsigned(width)), Signal(unsigned(width))
        load_length = Signal(range(self._depth + 1))   # beats stored
        length = self.length
        load_overflowed = Signal()
        load_done = self.load_done                # the load side holds a whole token
        load_bank, bank = Signal(), Signal()      # (with one bank both stay 0)
        idle = Signal()                           # nothing is being divided or emitted
        shift = Signal(range(field + 1))          # left shift that puts peak's leading one at field-1
        peak_norm = Signal(NORM_MAX_BITLEN)       # m_n in [2^16, 2^17)
        quotient = Signal(QUOTIENT_BITS)          # floor((2^33 − 1) / m_n)
        recip = Signal(QUOTIENT_BITS)             # R = quotient + 1
        remainder = Signal(NORM_MAX_BITLEN + 1)
        step = self.step                          # quotient bit made next (two a cycle, down to 0)
        read_addr = self.read_addr                # (no bank: the second pass's beats taken)
        emitting = self.emitting                  # in EMIT (no bank: ``i`` carries the second pass)
        replayed = self.replayed                  # no bank: the second pass's last beat was taken

        def normalize(v):
            """|v| (unsigned, ``width`` bits) with the current shift, top 17 bits kept."""
            wide = Signal(unsigned(field), name="norm_in")
            m.d.comb += wide.eq(v)
            return (wide << shift)[field - NORM_MAX_BITLEN:field]

        # Load pipeline (never stalls): magnitudes, then the buffer write and the maximum tree.
        load_take = Signal()                      # a beat taken for the load side
        m.d.comb += load_take.eq(self.i.valid & self.i.ready & (~emitting if replay else 1))
        in_beat, in_valid = register_sign_magnitude(m, self.i, width, lanes, take=load_take)
        kept = Signal()                           # the beat fits the buffer
        m.d.comb += kept.eq(in_valid & (load_length < self._depth))
        with m.If(in_valid):
            store_beat(m, wr, load_length, self._depth, in_beat, load_overflowed, bank=load_bank)
        beat_max, beat_max_valid, tree_valid = pipelined_max(
            m, [in_beat[lane].mag for lane in range(lanes)], kept, "max")
        with m.If(beat_max_valid & (beat_max > load_peak)):
            m.d.sync += load_peak.eq(beat_max)
        loaded = ~in_valid
        for valid in tree_valid:
            loaded &= ~valid

        # Bit length of the stored token's peak (a tree of halves: logarithmic depth).
        bitlen = bit_length_tree(m, load_peak, "bitlen")

        # Emit pipeline: read (memory), register, normalize, multiply, round, sign; ``advance``
        # moves all of it. With no bank the second pass's beats enter it at the register.
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        stages = [(Signal(name=f"s{n}_valid"), Signal(name=f"s{n}_last"))
                  for n in range(2 if replay else 1, 6)]
        # (the emit pipeline's data registers are not reset: its stages' flags are)
        s2_entry = Signal(data.ArrayLayout(entry, lanes), reset_less=True)
        s3_mag = [Signal(NORM_MAX_BITLEN, name=f"s3_mag{lane}", reset_less=True) for lane in range(lanes)]
        s4_prod = [Signal(NORM_MAX_BITLEN + QUOTIENT_BITS, name=f"s4_prod{lane}", reset_less=True)
                   for lane in range(lanes)]
        s5_code = [Signal(ACT_BITS - 1, name=f"s5_code{lane}", reset_less=True) for lane in range(lanes)]
        negs = [[Signal(name=f"s{n}_neg{lane}", reset_less=True) for lane in range(lanes)] for n in (3, 4, 5)]
        m.d.comb += self.in_flight.eq(Cat(valid for valid, _ in stages).any())
        issue = Signal()
        if replay:
            replay_take = Signal()
            m.d.comb += [replay_take.eq(self.i.valid & self.i.ready & emitting),
                         issue.eq(replay_take & (read_addr < length))]
            with m.If(issue):
                m.d.sync += read_addr.eq(read_addr + 1)       # (stays at length past a cut)
            with m.If(replay_take):
                m.d.sync += replayed.eq(self.i.payload.last)
            entry_data = sign_magnitude_beat(m, self.i.payload.data, width, lanes)
        else:
            m.d.comb += [rd.addr.eq(bank_address(bank, self._depth, read_addr)), rd.en.eq(advance)]
            entry_data = rd.data

        with m.If(advance):
            m.d.sync += [stages[0][0].eq(issue), stages[0][1].eq(read_addr == length - 1)]
            for (valid, last), (prev_valid, prev_last) in zip(stages[1:], stages):
                m.d.sync += [valid.eq(prev_valid), last.eq(prev_last)]
            m.d.sync += [self.o.valid.eq(stages[-1][0]), self.o.payload.last.eq(stages[-1][1]),
                         s2_entry.eq(entry_data)]
            for lane in range(lanes):
                s3_neg, s4_neg, s5_neg = (negs[k][lane] for k in range(3))
                scaled = (s4_prod[lane] << 7) - s4_prod[lane] + (1 << (RECIP_SHIFT - 1))
                code = s5_code[lane]
                m.d.sync += [s3_mag[lane].eq(normalize(s2_entry[lane].mag)), s3_neg.eq(s2_entry[lane].neg),
                             s4_prod[lane].eq(s3_mag[lane] * recip), s4_neg.eq(s3_neg),
                             code.eq(scaled[RECIP_SHIFT:RECIP_SHIFT + ACT_BITS - 1]), s5_neg.eq(s4_neg),
                             self.o.payload.data[lane].eq(Mux(s5_neg, -code, code))]

        m.d.sync += recip.eq(quotient + 1)
        # The load side takes a token while it holds none (with one bank, also while nothing is
        # being divided or emitted: the bank is shared); with none, ``i`` carries the second pass
        # while emitting, a beat a cycle as the pipeline advances, up to its last beat.
        if replay:
            m.d.comb += self.i.ready.eq(Mux(emitting, advance & ~replayed, ~load_done & idle))
        else:
            m.d.comb += self.i.ready.eq(~load_done & (idle if self._banks == 1 else 1))
        with m.If(load_take & self.i.payload.last):
            m.d.sync += load_done.eq(1)
        with m.FSM() as fsm:
            with m.State("NORMALIZE"):
                # the stored token moves over (its bank, peak and length), the load side is free
                m.d.comb += idle.eq(1)
                with m.If(load_done & loaded):
                    m.d.sync += [shift.eq(field - bitlen), self.overflow.eq(load_overflowed),
                                 peak.eq(load_peak), length.eq(load_length), bank.eq(load_bank),
                                 load_peak.eq(0), load_length.eq(0), load_overflowed.eq(0),
                                 load_done.eq(0)]
                    if self._banks == 2:
                        m.d.sync += load_bank.eq(~load_bank)
                    m.next = "SHIFTED"
            with m.State("SHIFTED"):
                # m_n, and the divider's start: the top bits of 2^33 − 1 (below m_n).
                m.d.sync += [peak_norm.eq(normalize(peak)), quotient.eq(0), step.eq(QUOTIENT_BITS - 1),
                             remainder.eq((1 << (RECIP_SHIFT - QUOTIENT_BITS)) - 1)]
                m.next = "DIVIDE"
            with m.State("DIVIDE"):
                # two restoring steps a cycle; every dividend bit brought down is a one
                trial_high = Cat(Const(1, 1), remainder)
                fits_high = trial_high >= peak_norm
                middle = Signal(NORM_MAX_BITLEN + 1)
                m.d.comb += middle.eq(Mux(fits_high, trial_high - peak_norm, trial_high))
                trial_low = Cat(Const(1, 1), middle)
                fits_low = trial_low >= peak_norm
                m.d.sync += [remainder.eq(Mux(fits_low, trial_low - peak_norm, trial_low)),
                             quotient.eq(Cat(fits_low, fits_high, quotient)), step.eq(step - 2)]
                with m.If(step == 1):
                    m.d.sync += [read_addr.eq(0), replayed.eq(0)]
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += emitting.eq(1)
                if replay:
                    drained = pipeline_drained(replayed, advance, [v for v, _ in stages])
                else:
                    drained = read_pass(m, issue, read_addr, length, advance, [v for v, _ in stages])
                with m.If(drained):
                    m.next = "NORMALIZE"
        self.fsm = fsm
        m.d.comb += self.o.payload.peak.eq(peak)
        return m
