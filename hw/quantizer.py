"""Per-token int8 absmax quantizer, exactly ``model.numerics.absmax_quantize`` (docs/numerics.md §2).

A token arrives on ``i`` as beats of ``lanes`` signed ``width``-bit values, ``last`` on its final beat.
The quantizer stores it while tracking ``m = max|u|``, then

1. normalizes ``m`` to 17 magnitude bits (``m_n``, leading one at bit 16: one priority encoder and
   shifter),
2. computes ``R = ceil(2^33 / m_n)`` with a restoring divider, two quotient bits a cycle (9 cycles),
3. reads the token back and emits ``q = sign(u)·((|u_n|·R·127 + 2^32) >> 33)`` per lane, where
   ``|u_n|`` is ``|u|`` normalized by the same shift (truncating): one 17×18-bit multiply per lane,
   ``·127`` as ``(p << 7) − p``.

``o`` carries the codes, ``last``, and ``peak = m`` (the per-token scale the dequant needs; 0 for an
all-zero token, whose codes are all 0).

Latency: the first output beat is presented ``latency`` cycles after the token's last input beat is
accepted. Throughput: one beat per cycle in, then one beat per cycle out; a token of ``b`` beats
occupies the quantizer for about ``2b + latency`` cycles (input is not accepted while a token is
being divided and emitted). Tokens longer than ``max_length`` elements are cut at ``max_length``
(the rest of the token is accepted and dropped) and ``overflow`` is raised for that token.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS, NORM_MAX_BITLEN, RECIP_SHIFT

from .arith import bit_length, check_integers, magnitude, max_tree, read_pass, store_beat

QUOTIENT_BITS = RECIP_SHIFT - NORM_MAX_BITLEN + 2   # R = ceil(2^33 / m_n) < 2^18: 18 bits
assert QUOTIENT_BITS % 2 == 0                        # the divider makes two bits a cycle


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
        Elements per beat.
    max_length : int
        Longest token in elements (the buffer holds ``ceil(max_length / lanes)`` beats).
    """

    def __init__(self, *, width: int, lanes: int = 1, max_length: int):
        check_integers((("width", width), ("lanes", lanes), ("max_length", max_length)))
        if not 2 <= width <= 48:
            raise ValueError(f"width must be between 2 and 48 bits, not {width}")
        self._width, self._lanes = width, lanes
        self._depth = -(-max_length // lanes)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(width), lanes), "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(ACT_BITS), lanes), "peak": unsigned(width),
                "last": 1}))),
            "overflow": Out(1),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)

    @staticmethod
    def latency_of() -> int:
        """Cycles from a token's last input beat to its first code: find the shift and normalize
        m (2), divide (two quotient bits a cycle), issue the read, memory, normalize, multiply and
        round into the output register (5)."""
        return 2 + QUOTIENT_BITS // 2 + 5

    latency = property(lambda self: self.latency_of())

    def elaborate(self, platform):
        m = Module()
        width, lanes = self._width, self._lanes
        field = max(width, NORM_MAX_BITLEN)       # shifter field: the leading one goes to its top

        buffer = memory.Memory(shape=data.ArrayLayout(signed(width), lanes), depth=self._depth, init=[])
        m.submodules.buffer = buffer
        wr = buffer.write_port()
        rd = buffer.read_port()

        peak = Signal(unsigned(width))
        length = Signal(range(self._depth + 1))   # beats stored
        overflowed = Signal()
        shift = Signal(range(field + 1))          # left shift that puts peak's leading one at field-1
        peak_norm = Signal(NORM_MAX_BITLEN)       # m_n in [2^16, 2^17)
        recip = Signal(QUOTIENT_BITS)
        remainder = Signal(NORM_MAX_BITLEN + 1)
        step = Signal(range(QUOTIENT_BITS))       # dividend bit brought down next
        read_addr = Signal(range(self._depth + 1))

        # The largest magnitude among the lanes of the incoming beat.
        beat_max = max_tree(m, [magnitude(v)[:width] for v in self.i.payload.data], width, "beat_max")

        # Priority encoder: bit length of peak.
        bitlen = bit_length(m, peak, "bitlen")

        def normalize(v):
            """|v| (unsigned, ``width`` bits) with the current shift, top 17 bits kept."""
            wide = Signal(unsigned(field), name="norm_in")
            m.d.comb += wide.eq(v)
            return (wide << shift)[field - NORM_MAX_BITLEN:field]

        # Emit pipeline: read (memory), normalize, multiply, round; ``advance`` moves all of it.
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        s1_valid, s1_last = Signal(), Signal()     # memory data valid
        s2_valid, s2_last = Signal(), Signal()     # normalized magnitudes
        s3_valid, s3_last = Signal(), Signal()     # products
        s2_mag = [Signal(NORM_MAX_BITLEN, name=f"s2_mag{lane}") for lane in range(lanes)]
        s2_neg = [Signal(name=f"s2_neg{lane}") for lane in range(lanes)]
        s3_prod = [Signal(NORM_MAX_BITLEN + QUOTIENT_BITS, name=f"s3_prod{lane}") for lane in range(lanes)]
        s3_neg = [Signal(name=f"s3_neg{lane}") for lane in range(lanes)]
        issue = Signal()
        m.d.comb += [rd.addr.eq(read_addr), rd.en.eq(advance)]

        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq(read_addr == length - 1),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last),
                         s3_valid.eq(s2_valid), s3_last.eq(s2_last)]
            for lane in range(lanes):
                u = rd.data[lane]
                m.d.sync += [s2_mag[lane].eq(normalize(magnitude(u)[:width])), s2_neg[lane].eq(u < 0),
                             s3_prod[lane].eq(s2_mag[lane] * recip), s3_neg[lane].eq(s2_neg[lane])]
                scaled = (s3_prod[lane] << 7) - s3_prod[lane] + (1 << (RECIP_SHIFT - 1))
                code = scaled[RECIP_SHIFT:RECIP_SHIFT + ACT_BITS - 1]
                m.d.sync += self.o.payload.data[lane].eq(Mux(s3_neg[lane], -code, code))
            m.d.sync += [self.o.valid.eq(s3_valid), self.o.payload.last.eq(s3_last)]

        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    store_beat(m, wr, length, self._depth, self.i.payload.data, [(beat_max, peak)],
                               overflowed)
                    with m.If(self.i.payload.last):
                        m.next = "NORMALIZE"
            with m.State("NORMALIZE"):
                m.d.sync += [shift.eq(field - bitlen), self.overflow.eq(overflowed)]
                m.next = "SHIFTED"
            with m.State("SHIFTED"):
                # m_n, and the divider's start: the top bits of 2^33 + m_n - 1 (below m_n).
                m_n = normalize(peak)
                dividend = (1 << RECIP_SHIFT) + m_n - 1
                m.d.sync += [peak_norm.eq(m_n), recip.eq(0), step.eq(QUOTIENT_BITS - 1),
                             remainder.eq(dividend >> QUOTIENT_BITS)]
                m.next = "DIVIDE"
            with m.State("DIVIDE"):
                # two restoring steps a cycle: dividend bits ``step`` (odd) and ``step − 1``
                dividend = Signal(RECIP_SHIFT + 2)
                m.d.comb += dividend.eq((1 << RECIP_SHIFT) + peak_norm - 1)
                trial_high = Cat(dividend.bit_select(step, 1), remainder)
                fits_high = trial_high >= peak_norm
                middle = Signal(NORM_MAX_BITLEN + 1)
                m.d.comb += middle.eq(Mux(fits_high, trial_high - peak_norm, trial_high))
                trial_low = Cat(dividend.bit_select(step ^ 1, 1), middle)
                fits_low = trial_low >= peak_norm
                m.d.sync += [remainder.eq(Mux(fits_low, trial_low - peak_norm, trial_low)),
                             recip.eq(Cat(fits_low, fits_high, recip)), step.eq(step - 2)]
                with m.If(step == 1):
                    m.d.sync += read_addr.eq(0)
                    m.next = "EMIT"
            with m.State("EMIT"):
                drained = read_pass(m, issue, read_addr, length, advance, (s1_valid, s2_valid, s3_valid))
                with m.If(drained):
                    m.d.sync += [length.eq(0), peak.eq(0), overflowed.eq(0)]
                    m.next = "LOAD"
        m.d.comb += self.o.payload.peak.eq(peak)
        return m
