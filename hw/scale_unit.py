"""The engine's scalar arithmetic on scales, exactly ``model.numerics`` §3.

A scale is ``mant · 2^exp`` with a 16-bit mantissa (``mant`` in [2^15, 2^16), or 0 for the scale
0) and a signed exponent. Every dequantization factor the integer model uses is built from a
handful of these operations per token and layer (``rms_quantize``: two from-ints, six products,
one sum and one rsqrt), so one small sequential unit serves the whole engine:

=========  ===================================  ===========================  ==================
op         result                               numerics function            cycles (accept→out)
=========  ===================================  ===========================  ==================
MUL        a · b                                ``scale_mul(a, b)``          ``NORMALIZE + 1``
ADD        a + b                                ``scale_add(a, b)``          ``NORMALIZE + 1``
FROM_INT   n · 2^a.exp                          ``scale_from_int(n, a.exp)`` ``NORMALIZE + 1``
RECIP      1 / a                                ``scale_recip(a)``           ``DIVIDE + NORMALIZE + 1``
RSQRT      1 / sqrt(a)                          ``scale_rsqrt(a)``           ``SQRT + DIVIDE + 2·NORMALIZE + 1``
=========  ===================================  ===========================  ==================

Every result goes through one normalizer (``scale_from_int``: bit length, shift with round half up,
renormalize on carry; 3 cycles). RECIP divides the constant 2^31 by the mantissa with a restoring
divider, one quotient bit per cycle; RSQRT takes the integer square root of ``mant · 2^(30 + odd)``
one result bit per cycle, normalizes it and takes its reciprocal. There are no multipliers but
MUL's one 16×16 product.

``o.payload.invalid`` is set (and ``mant``, ``exp`` are 0) where numerics raises or the exponent does
not fit ``exp_bits``: RECIP or RSQRT of the scale 0, or a result exponent out of range.
The unit takes one command at a time (``i.ready`` is low while it works); ``cycles(op)`` is the
number of clock edges from the edge that accepts a command to the first edge its result is valid.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import SCALE_ALIGN_BITS, SCALE_BITS, SCALE_EXP_BITS

from .arith import bit_length, check_integers

RECIP_DIVIDEND_SHIFT = 2 * SCALE_BITS - 1   # 1/a = floor(2^31 / mant) · 2^(-31 - exp)
RSQRT_SHIFT = 30                            # isqrt(mant · 2^(30 + odd)): a 23-bit root
ROOT_BITS = (SCALE_BITS + 1 + RSQRT_SHIFT + 1) // 2
ADD_BITS = SCALE_BITS + SCALE_ALIGN_BITS + 1          # two aligned mantissas and their carry
QUOTIENT_BITS = RECIP_DIVIDEND_SHIFT + 1              # floor(2^31 / mant) for any mant >= 1
EXP_GUARD_BITS = 7                                    # headroom of internal exponent arithmetic


class ScaleOp(enum.Enum, shape=3):
    MUL = 0
    ADD = 1
    FROM_INT = 2
    RECIP = 3
    RSQRT = 4


def scale_layout(exp_bits: int) -> data.StructLayout:
    return data.StructLayout({"mant": unsigned(SCALE_BITS), "exp": signed(exp_bits)})


class ScaleUnit(wiring.Component):
    """MUL, ADD, FROM_INT, RECIP and RSQRT on 16-bit-mantissa scales (``model.numerics`` §3),
    one command at a time; :meth:`cycles` per operation.

    Parameters
    ----------
    exp_bits : int
        Signed exponent width of operands and results (6 to 24 bits).
    int_bits : int
        Width of FROM_INT's unsigned integer operand ``n`` (1 to 64 bits).
    """

    NORMALIZE = 3                  # bit length and rounding, carry, hand-over
    DIVIDE = QUOTIENT_BITS + 1     # one quotient bit a cycle, then the quotient to the normalizer
    SQRT = ROOT_BITS + 1           # one root bit a cycle, then the root to the normalizer

    def __init__(self, *, exp_bits: int = SCALE_EXP_BITS, int_bits: int = 48):
        check_integers((("exp_bits", exp_bits, 6, 24), ("int_bits", int_bits, 1, 64)))
        self._exp_bits, self._int_bits = exp_bits, int_bits
        scale = scale_layout(exp_bits)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "op": ScaleOp, "a": scale, "b": scale, "n": unsigned(int_bits)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "mant": unsigned(SCALE_BITS), "exp": signed(exp_bits), "invalid": 1}))),
        })

    exp_bits = property(lambda self: self._exp_bits)
    int_bits = property(lambda self: self._int_bits)
    exp_range = property(lambda self: range(-(1 << (self._exp_bits - 1)), 1 << (self._exp_bits - 1)))

    def cycles(self, op: ScaleOp) -> int:
        """Clock edges from the edge that accepts an ``op`` command to the first its result is valid."""
        return self.cycles_of(op)

    @staticmethod
    def cycles_of(op: ScaleOp) -> int:
        """:meth:`cycles` without a unit (the unit's timing does not depend on its widths)."""
        unit = ScaleUnit
        return {ScaleOp.RECIP: unit.DIVIDE + unit.NORMALIZE + 1,
                ScaleOp.RSQRT: unit.SQRT + unit.DIVIDE + 2 * unit.NORMALIZE + 1
                }.get(ScaleOp(op), unit.NORMALIZE + 1)

    def elaborate(self, platform):
        m = Module()
        value_bits = max(self._int_bits, ADD_BITS, QUOTIENT_BITS, 2 * SCALE_BITS)
        exp_wide = signed(self._exp_bits + EXP_GUARD_BITS)
        cmd = self.i.payload

        op = Signal(ScaleOp)
        a_mant = Signal(SCALE_BITS)
        a_exp = Signal(exp_wide)
        value = Signal(value_bits)          # the normalizer's operand: value · 2^value_exp
        value_exp = Signal(exp_wide)
        mant = Signal(SCALE_BITS + 1)       # rounded mantissa, 2^16 before the carry fix
        mant_exp = Signal(exp_wide)
        invalid = Signal()
        second_pass = Signal()              # RSQRT: the root is normalized, the reciprocal is next

        # Restoring divider for floor(2^31 / divisor): bring down one dividend bit a cycle.
        divisor = Signal(SCALE_BITS)
        remainder = Signal(SCALE_BITS + 1)
        quotient = Signal(QUOTIENT_BITS)
        step = Signal(range(max(QUOTIENT_BITS, ROOT_BITS)))
        # Bit-by-bit integer square root of radicand < 2^47.
        radicand = Signal(2 * ROOT_BITS)
        root = Signal(2 * ROOT_BITS)        # the partial root, shifted; < 2^ROOT_BITS at the end
        bit = Signal(2 * ROOT_BITS)         # the current power of four

        def start_divide(mant_in, exp_in):
            m.d.sync += [divisor.eq(mant_in), remainder.eq(0), quotient.eq(0),
                         step.eq(QUOTIENT_BITS - 1),
                         value_exp.eq(-RECIP_DIVIDEND_SHIFT - exp_in)]

        bitlen = bit_length(m, value, "bitlen")

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    a_exp_in, b_exp_in = cmd.a.exp.as_signed(), cmd.b.exp.as_signed()
                    m.d.sync += [op.eq(cmd.op), a_mant.eq(cmd.a.mant), a_exp.eq(a_exp_in),
                                 invalid.eq(0), second_pass.eq(0)]
                    with m.Switch(cmd.op):
                        with m.Case(ScaleOp.MUL):
                            m.d.sync += [value.eq(cmd.a.mant * cmd.b.mant),
                                         value_exp.eq(a_exp_in + b_exp_in)]
                            m.next = "BITLEN"
                        with m.Case(ScaleOp.ADD):
                            # A zero operand takes the other's exponent; align both to the larger
                            # with SCALE_ALIGN_BITS guard bits (shifts of 41+ leave nothing).
                            ea = Mux(cmd.a.mant == 0, b_exp_in, a_exp_in)
                            eb = Mux(cmd.b.mant == 0, a_exp_in, b_exp_in)
                            top = Mux(ea > eb, ea, eb)

                            def aligned(mant_in, exp_in):
                                distance = (top - exp_in).as_unsigned()
                                far = distance >= ADD_BITS
                                shifted = Cat(Const(0, SCALE_ALIGN_BITS), mant_in) >> distance[:6]
                                return Mux(far, 0, shifted)
                            m.d.sync += [value.eq(aligned(cmd.a.mant, ea) + aligned(cmd.b.mant, eb)),
                                         value_exp.eq(top - SCALE_ALIGN_BITS)]
                            m.next = "BITLEN"
                        with m.Case(ScaleOp.FROM_INT):
                            m.d.sync += [value.eq(cmd.n), value_exp.eq(a_exp_in)]
                            m.next = "BITLEN"
                        with m.Case(ScaleOp.RECIP):
                            start_divide(cmd.a.mant, a_exp_in)
                            m.next = "DIVIDE"
                        with m.Case(ScaleOp.RSQRT):
                            odd = cmd.a.exp[0]
                            m.d.sync += [radicand.eq(Cat(Const(0, RSQRT_SHIFT), Mux(odd, cmd.a.mant << 1,
                                                                                    cmd.a.mant))),
                                         root.eq(0), bit.eq(1 << (2 * ROOT_BITS - 2)),
                                         step.eq(ROOT_BITS - 1),
                                         value_exp.eq((a_exp_in - odd - RSQRT_SHIFT) >> 1)]
                            m.next = "SQRT"
                        with m.Default():
                            m.d.sync += invalid.eq(1)
                            m.next = "DONE"

            with m.State("DIVIDE"):
                dividend_bit = Mux(step == RECIP_DIVIDEND_SHIFT, 1, 0)
                trial = Cat(dividend_bit, remainder)
                fits = trial >= divisor
                m.d.sync += [remainder.eq(Mux(fits, trial - divisor, trial)),
                             quotient.eq(Cat(fits, quotient)), step.eq(step - 1)]
                with m.If(divisor == 0):
                    m.d.sync += invalid.eq(1)
                    m.next = "DONE"
                with m.Elif(step == 0):
                    m.next = "DIVIDED"
            with m.State("DIVIDED"):
                m.d.sync += value.eq(quotient)
                m.next = "BITLEN"

            with m.State("SQRT"):
                candidate = root + bit
                fits = radicand >= candidate
                m.d.sync += [radicand.eq(Mux(fits, radicand - candidate, radicand)),
                             root.eq(Mux(fits, (root >> 1) + bit, root >> 1)),
                             bit.eq(bit >> 2), step.eq(step - 1)]
                with m.If(step == 0):
                    m.next = "ROOTED"
            with m.State("ROOTED"):
                m.d.sync += [value.eq(root), second_pass.eq(1)]
                m.next = "BITLEN"

            with m.State("BITLEN"):
                # scale_from_int: shift = bitlen - 16; round half up where it shifts right.
                right, left = Signal(range(value_bits + 1)), Signal(range(SCALE_BITS + 1))
                m.d.comb += [right.eq(bitlen - SCALE_BITS), left.eq(SCALE_BITS - bitlen)]
                with m.If(bitlen > SCALE_BITS):
                    half = Const(1, value_bits + 1) << (right - 1)[:len(right)]
                    m.d.sync += [mant.eq((value + half) >> right),
                                 mant_exp.eq(value_exp + right)]
                with m.Else():
                    m.d.sync += [mant.eq(value << left), mant_exp.eq(value_exp - left)]
                with m.If(value == 0):
                    m.d.sync += mant_exp.eq(0)
                m.next = "CARRY"
            with m.State("CARRY"):
                carry = mant[SCALE_BITS]
                m.d.sync += [mant.eq(Mux(carry, mant >> 1, mant)), mant_exp.eq(mant_exp + carry)]
                m.next = "RESULT"
            with m.State("RESULT"):
                with m.If((op == ScaleOp.RSQRT) & second_pass):
                    m.d.sync += second_pass.eq(0)
                    with m.If(mant == 0):
                        m.d.sync += invalid.eq(1)
                        m.next = "DONE"
                    with m.Else():
                        start_divide(mant, mant_exp)
                        m.next = "DIVIDE"
                with m.Else():
                    m.next = "DONE"

            with m.State("DONE"):
                limit = 1 << (self._exp_bits - 1)
                bad = invalid | (mant_exp < -limit) | (mant_exp >= limit)
                m.d.comb += [self.o.valid.eq(1), self.o.payload.invalid.eq(bad),
                             self.o.payload.mant.eq(Mux(bad, 0, mant)),
                             self.o.payload.exp.eq(Mux(bad, 0, mant_exp))]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        return m


class ScaleProgram:
    """A straight-line program of ScaleUnit commands, run as two states of the caller's FSM.

    ``program`` rows are ``(result, op, a, b, integer)``: ``a`` and ``b`` name earlier results or
    entries of ``sources`` (scale-layout values); ``integer`` names an entry of ``integers``, an
    ``(n, exp)`` pair for FROM_INT (``n · 2^exp``). Results are registers (``results[name]``);
    ``invalid`` is the OR of the unit's invalid flags over the run.
    """

    def __init__(self, program, exp_bits: int):
        self.program = program
        layout = scale_layout(exp_bits)
        self.results = {name: Signal(layout, name=f"r_{name}") for name, *_ in program}
        self.step = Signal(range(len(program)))
        self.invalid = Signal()

    def start(self):
        """Statements (sync) that make the next run begin at the first command."""
        return [self.step.eq(0), self.invalid.eq(0)]

    @staticmethod
    def cycles(program) -> int:
        """Clock edges from entering the issue state to leaving the result state for the last time."""
        return sum(ScaleUnit.cycles_of(op) + 1 for _, op, *_ in program)

    def states(self, m, unit, sources: dict, integers: dict, issue: str, result: str, done: str):
        sources = {**sources, **self.results}
        with m.State(issue):
            m.d.comb += unit.i.valid.eq(1)
            with m.Switch(self.step):
                for index, (_, op, a, b, integer) in enumerate(self.program):
                    with m.Case(index):
                        m.d.comb += unit.i.payload.op.eq(op)
                        if a:
                            m.d.comb += unit.i.payload.a.eq(sources[a])
                        if b:
                            m.d.comb += unit.i.payload.b.eq(sources[b])
                        if integer:
                            n, exp = integers[integer]
                            m.d.comb += [unit.i.payload.n.eq(n), unit.i.payload.a.exp.eq(exp)]
            with m.If(unit.i.ready):
                m.next = result
        with m.State(result):
            m.d.comb += unit.o.ready.eq(1)
            with m.If(unit.o.valid):
                with m.Switch(self.step):
                    for index, (name, *_) in enumerate(self.program):
                        with m.Case(index):
                            m.d.sync += [self.results[name].mant.eq(unit.o.payload.mant),
                                         self.results[name].exp.eq(unit.o.payload.exp)]
                m.d.sync += [self.invalid.eq(self.invalid | unit.o.payload.invalid),
                             self.step.eq(self.step + 1)]
                with m.If(self.step == len(self.program) - 1):
                    m.next = done
                with m.Else():
                    m.next = issue


class NormalizedScaleMultiplier(wiring.Component):
    """``scale_mul(a, b)`` at one product per cycle for normalized operands (mantissa in
    [2^15, 2^16)) or zero scales, the only ones the engine's datapath makes: the 32-bit product's
    leading one is then at bit 30 or 31, so normalizing is a choice of two shifts.

    Two pipeline stages, no backpressure: ``o`` follows ``i`` ``latency`` cycles later.
    ``o.invalid`` flags a nonzero product of an unnormalized operand (its result would differ from
    ``scale_mul``).
    """

    @property
    def latency(self) -> int:
        """Cycles from ``i`` to ``o`` (two pipeline stages)."""
        return 2

    def __init__(self, exp_bits: int = SCALE_EXP_BITS):
        layout = scale_layout(exp_bits)
        super().__init__({
            "i": In(data.StructLayout({"a": layout, "b": layout, "valid": 1})),
            "o": Out(data.StructLayout({"mant": unsigned(SCALE_BITS), "exp": signed(exp_bits),
                                        "invalid": 1, "valid": 1})),
        })

    def elaborate(self, platform):
        m = Module()
        exp_bits = len(self.o.exp)
        product = Signal(2 * SCALE_BITS)
        exp_sum = Signal(signed(exp_bits + 1))
        valid = Signal()
        m.d.sync += [product.eq(self.i.a.mant * self.i.b.mant),
                     exp_sum.eq(self.i.a.exp + self.i.b.exp), valid.eq(self.i.valid)]
        top = product[2 * SCALE_BITS - 1]
        rounded = Signal(SCALE_BITS + 1)
        m.d.comb += rounded.eq(Mux(top, (product + (1 << (SCALE_BITS - 1))) >> SCALE_BITS,
                                   (product + (1 << (SCALE_BITS - 2))) >> (SCALE_BITS - 1)))
        carry = rounded[SCALE_BITS]
        exp = exp_sum + Mux(top, SCALE_BITS, SCALE_BITS - 1) + carry
        zero = product == 0
        limit = 1 << (exp_bits - 1)
        bad = ~zero & ((~top & ~product[2 * SCALE_BITS - 2]) | (exp < -limit) | (exp >= limit))
        m.d.sync += [self.o.mant.eq(Mux(zero | bad, 0, Mux(carry, rounded >> 1, rounded))),
                     self.o.exp.eq(Mux(zero | bad, 0, exp)), self.o.invalid.eq(bad),
                     self.o.valid.eq(valid)]
        return m
