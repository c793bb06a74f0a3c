"""The shared vector unit's scalar side: :class:`~hw.vector_isa.ScalarOp`\\ s on a register file,
exactly as :class:`~hw.vector_isa.VectorMachine` runs them (issue 18).

A register holds an integer (``value``, :data:`~hw.vector_isa.REGISTER_BITS` signed) or a scale
(``value`` its 16-bit mantissa, ``exp`` its exponent). One operation is taken at a time (``i``) and
answered on ``o`` when its result is written, with ``error`` set where the machine raises a
:class:`~hw.vector_isa.ProgramError` (a value outside its register, a scale operand outside its
mantissa and exponent, MUL_INT's operands outside the multiplier's ports, CODE_RECIP of a
misnormalized peak, RECIP or RSQRT of the scale 0, a STORE outside an element); then nothing is
written. The operations, and their cycles from taken to answered (:meth:`ScalarUnit.cycles_of`):

==========================================  =============================================  ===========
kind                                        how                                            cycles
==========================================  =============================================  ===========
ADD, RECIP, RSQRT                           the :class:`~hw.scale_unit.ScaleUnit`           4 + its own
MUL (normalized scales or 0)                a :class:`~hw.scale_unit.NormalizedScaleMultiplier`  5
FROM_INT                                    the bit length, the shift to 17 bits, then     7
                                            the rounding and the exponent
IS_ZERO, SELECT, MANT, EXP                  one ALU stage                                  3
INT, ADD_INT, SCALE, SHR, MAX               one ALU stage, on prepared operands (MAX: its  4
                                            comparison)
NORM_SHIFT, CODE_SHIFT                      the bit length of ``|a|`` a stage, then one    5
                                            ALU stage
MUL_INT                                     a registered 36 × 18 product                   4
CODE_RECIP                                  ``ceil(2^33 / m_n)``, two quotient bits a      6 + 9
                                            cycle
LOAD, STORE                                 the scratchpad's access port                   4, 3
==========================================  =============================================  ===========

Every operation reads its operands from the register file (three read ports: a, b and the amount's
register) in the cycle it is taken, registers them, prepares them where its kind needs it
(``PREPARED``: the amount, ``|a|``, the shifts, MAX's comparison; a carry chain at most),
computes, and writes its result as it answers.
``read`` (two ports, with ``read_select`` high) and ``write`` give the sequencer the register file
while the unit is idle (its passes' shift amounts and operands; their reductions' results);
``read_data`` are the registers at the addresses of the cycle before. ``access`` /
``access_data`` go to the vector unit's port of the same names; a LOAD waits for ``access_ready``
(the vector unit's ``access_free``).

With ``lend_bits``, the ScaleUnit is lent: a ``lent_scale`` port (a ScaleUnit's, FROM_INT operands of
``lend_bits``) lets another block run its scale programs on it (a
:class:`~hw.scale_unit.SharedScaleUnit`, the scalar unit's own operations first), so an engine
whose sequencer waits while that block works needs no ScaleUnit of its own there. No cycle is
added while the lent port is idle.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model import numerics as nx

from .arith import bit_length_tree, check_integers
from .quantizer import QUOTIENT_BITS
from .scale_unit import NormalizedScaleMultiplier, ScaleOp, ScaleUnit, SharedScaleUnit, scale_unit_signature
from .vector_isa import A_BITS, B_BITS, ELEMENT_BITS, REGISTER_BITS, SHR_LIMIT, Part, ScalarKind
from .vector_lane import fits

LEFT_LIMIT = nx.NORM_MAX_BITLEN      # CODE_RECIP's left shift (a peak below 2^17) is at most this
DIVIDE_STEPS = QUOTIENT_BITS // 2    # CODE_RECIP's quotient, two bits a step
# the kinds the ScaleUnit computes, and its operation for each
SCALE_OPS = {ScalarKind.ADD: ScaleOp.ADD,
             ScalarKind.RECIP: ScaleOp.RECIP, ScalarKind.RSQRT: ScaleOp.RSQRT}
# the kinds that use a prepared operand (the amount, |a|, the shifts or MAX's comparison): a cycle more
PREPARED = (ScalarKind.INT, ScalarKind.ADD_INT, ScalarKind.FROM_INT, ScalarKind.SCALE, ScalarKind.SHR,
            ScalarKind.NORM_SHIFT, ScalarKind.CODE_SHIFT, ScalarKind.CODE_RECIP, ScalarKind.MAX)
# the prepared kinds that use |a|'s bit length: a cycle more to measure it (a stage of its own)
MEASURED = (ScalarKind.NORM_SHIFT, ScalarKind.CODE_SHIFT, ScalarKind.FROM_INT, ScalarKind.CODE_RECIP)


def register_layout(exp_bits: int = nx.SCALE_EXP_BITS) -> data.StructLayout:
    return data.StructLayout({"value": signed(REGISTER_BITS), "exp": signed(exp_bits)})


def register_value(value) -> dict:
    """A :func:`register_layout` value: an integer, or a scale ``(mant, exp)``."""
    return {"value": value[0], "exp": value[1]} if isinstance(value, tuple) else {"value": value, "exp": 0}


def scalar_layout(registers: int, depth: int) -> data.StructLayout:
    """One operation: its kind, register numbers, its amount ``offset + sign · exp_register``
    (``sign`` 0: the offset alone) and LOAD's or STORE's scratchpad address."""
    return data.StructLayout({
        "kind": ScalarKind, "result": range(registers), "a": range(registers), "b": range(registers),
        "exp_register": range(registers), "exp_sign": signed(3), "exp_offset": signed(REGISTER_BITS),
        "exp_part": Part,
        "address": range(depth)})


def amount_value(offset, sign, register, part, bits: int | None = None):
    """An amount ``offset + sign · part(register)`` for a ``sign`` of -2, -1, 1 or 2 (0: the offset
    alone) and a :class:`~hw.vector_isa.Part` of a :func:`register_layout` value: a negation and a
    doubling at most, no multiplier. With ``bits``, the part saturates to that many signed bits
    first (for an amount that is clamped anyway, where the offset is well inside them)."""
    value = register.value
    negative = value[-1]
    dropped = ((part == Part.POSITIVE) & negative) | ((part == Part.NEGATIVE) & ~negative)
    register = Mux(part == Part.EXPONENT, register.exp, Mux(dropped, 0, value))
    if bits is not None:
        limit = (1 << (bits - 1)) - 1
        register = Mux(fits(register, bits), register[:bits].as_signed(),
                       Mux(register[-1], -limit - 1, limit))
    # one carry chain: offset + (x ^ −negative) + negative, x the part doubled or not (0 for a sign 0)
    scaled = Mux(sign == 0, 0, Mux((sign == 2) | (sign == -2), register << 1, register))
    negative = sign[-1]
    return offset + (scaled ^ -negative) + negative


def mantissa_fits(value):
    """``value`` is a scale's mantissa: in [0, 2^16)."""
    return ~value[-1] & (value >> nx.SCALE_BITS == 0)


def scalar_payload(op, number: dict) -> dict:
    """The :func:`scalar_layout` value of a :class:`~hw.vector_isa.ScalarOp` whose registers are
    numbered by ``number`` (name: register)."""
    return {"kind": op.kind, "result": number.get(op.result, 0), "a": number.get(op.a, 0),
            "b": number.get(op.b, 0), "exp_register": number.get(op.exp.register, 0),
            "exp_sign": op.exp.sign if op.exp.register else 0, "exp_offset": op.exp.offset,
            "exp_part": op.exp.part,
            "address": op.address or 0}


class ScalarUnit(wiring.Component):
    """``registers`` registers; LOAD and STORE address a ``depth``-element scratchpad.

    Parameters
    ----------
    registers : int
        Registers in the file (2 to 1024).
    depth : int
        The scratchpad's elements (the vector unit's ``depth``).
    lend_bits : int or None
        Lend the ScaleUnit through ``lent_scale``, whose FROM_INT operands are this wide.
    init : dict
        The registers' values after configuration: {register: integer or (mant, exp)}, the rest 0.
    """

    OPERANDS = 1          # the taken operation's registers read (then prepared: PREPARED's kinds)
    ANSWER = 2            # the result computed, then written and answered

    def __init__(self, *, registers: int, depth: int, lend_bits: int | None = None, init=None):
        check_integers((("registers", registers, 2, 1024), ("depth", depth, 1, 1 << 20)))
        if lend_bits is not None:
            check_integers((("lend_bits", lend_bits, 1, REGISTER_BITS - 1),))
        self._registers, self._depth, self._lend_bits = registers, depth, lend_bits
        self._init = dict(init or {})
        if any(not 0 < number < registers for number in self._init):
            raise ValueError(f"initial values name registers outside 1 … {registers - 1}")
        reg = register_layout()
        lent = ({"lent_scale": Out(scale_unit_signature(nx.SCALE_EXP_BITS, lend_bits))} if lend_bits else {})
        super().__init__({
            "i": In(stream.Signature(scalar_layout(registers, depth))),
            "o": Out(stream.Signature(data.StructLayout({"error": 1}))),
            "read": In(data.ArrayLayout(range(registers), 2)),
            "read_select": In(1),
            "read_data": Out(data.ArrayLayout(reg, 2)),
            "write": In(data.StructLayout({"addr": range(registers), "data": reg, "en": 1})),
            "access": Out(data.StructLayout({"addr": range(depth), "data": signed(ELEMENT_BITS),
                                             "write": 1})),
            "access_data": In(signed(ELEMENT_BITS)),
            "access_ready": In(1, init=1),
            "busy": Out(1),
            **lent,
        })

    registers = property(lambda self: self._registers)
    depth = property(lambda self: self._depth)

    @staticmethod
    def cycles_of(kind: ScalarKind) -> int:
        """Clock edges from the edge that takes an operation to the first its answer is offered."""
        base = ScalarUnit.OPERANDS + ScalarUnit.ANSWER + (kind in PREPARED) + (kind in MEASURED)
        if kind in SCALE_OPS:
            return base + 1 + ScaleUnit.cycles_of(SCALE_OPS[kind])
        return base + {ScalarKind.MUL_INT: 1, ScalarKind.MUL: NormalizedScaleMultiplier.latency_of(),
                       ScalarKind.CODE_RECIP: 1 + DIVIDE_STEPS, ScalarKind.FROM_INT: 2,
                       ScalarKind.LOAD: 1}.get(kind, 0)

    def elaborate(self, platform):
        m = Module()
        reg = register_layout()
        exp_bits = nx.SCALE_EXP_BITS
        m.submodules.file = file = Memory(shape=reg, depth=self._registers, init=[
            register_value(self._init.get(number, 0)) for number in range(self._registers)])
        port_a, port_b, port_e = file.read_port(), file.read_port(), file.read_port()
        port_w = file.write_port()
        if self._lend_bits:
            m.submodules.shared_scale = shared = SharedScaleUnit(
                {"scalar": 1, "lent": self._lend_bits}, exp_bits=exp_bits)      # no FROM_INT of its own
            scale_unit = shared.scalar
            wiring.connect(m, wiring.flipped(self.lent_scale), shared.lent)
        else:
            m.submodules.scale_unit = scale_unit = ScaleUnit(exp_bits=exp_bits, int_bits=1)

        op = Signal(scalar_layout(self._registers, self._depth))
        idle = Signal()
        # idle, the read ports take the offered operation's registers (or the sequencer's, with
        # ``read_select``) whether or not it is taken: no path from ``i.valid`` to the addresses
        source = Mux(idle, self.i.payload.as_value(), op.as_value())
        fields = scalar_layout(self._registers, self._depth)(source)
        free = idle & self.read_select
        m.d.comb += [port_a.addr.eq(Mux(free, self.read[0], fields.a)),
                     port_b.addr.eq(Mux(free, self.read[1], fields.b)), port_e.addr.eq(fields.exp_register),
                     self.read_data[0].eq(port_a.data), self.read_data[1].eq(port_b.data)]

        # -- the operands: registered as read, then prepared (a stage each: one carry chain at most)
        a, b, selector = Signal(reg), Signal(reg), Signal(reg)
        load_operands = Signal()
        with m.If(load_operands):
            m.d.sync += [a.eq(port_a.data), b.eq(port_b.data), selector.eq(port_e.data)]
        amount = Signal(signed(REGISTER_BITS + 3))          # offset + sign · register
        magnitude = Signal(REGISTER_BITS)                   # |a|
        right = Signal(range(SHR_LIMIT + 1))                # SHR's shift: b clamped to [0, 62]
        left = Signal(range(LEFT_LIMIT + 1))                # CODE_RECIP's left shift, -b
        code_bitlen = Signal(signed(REGISTER_BITS + 1))     # CODE_RECIP's bitlen(a) must be b + 17
        b_greater = Signal()                                # MAX's comparison
        prepare = Signal()
        with m.If(prepare):
            m.d.sync += [b_greater.eq(b.value > a.value),
                         amount.eq(amount_value(op.exp_offset, op.exp_sign, selector, op.exp_part)),
                         magnitude.eq(Mux(a.value[-1], -a.value, a.value)),
                         right.eq(Mux(b.value[-1], 0, Mux(b.value > SHR_LIMIT, SHR_LIMIT, b.value))),
                         left.eq(Mux(b.value[-1] & (b.value >= -LEFT_LIMIT), -b.value, 0)),
                         code_bitlen.eq(b.value + nx.NORM_MAX_BITLEN)]

        # -- the ALU: one stage from the prepared operands ------------------------------------------
        result, error = Signal(reg), Signal()
        value = Signal(signed(REGISTER_BITS + 4))          # an integer result before its width check
        bitlen = Signal(range(REGISTER_BITS + 1))           # |a|'s bit length, measured (MEASURED)
        measured = bit_length_tree(m, magnitude, "bitlen")
        # SHR's and CODE_RECIP's shifter: a >> b, or a << -b for CODE_RECIP
        shifted = Signal(signed(REGISTER_BITS + LEFT_LIMIT))
        m.d.comb += shifted.eq(Mux(b.value[-1], a.value << left, a.value >> right))
        is_scale = Signal()          # a scale result: (value, exp) checked as a scale

        alu = Signal(reg)
        alu_error = Signal()
        alu_checks = Signal()
        with m.Switch(op.kind):
            with m.Case(ScalarKind.INT):
                m.d.comb += value.eq(amount)
            with m.Case(ScalarKind.ADD_INT):
                m.d.comb += value.eq(a.value + amount)
            with m.Case(ScalarKind.MAX):
                m.d.comb += value.eq(Mux(b_greater, b.value, a.value))
            with m.Case(ScalarKind.IS_ZERO):
                m.d.comb += value.eq(a.value == 0)
            with m.Case(ScalarKind.MANT):
                m.d.comb += [value.eq(a.value), alu_error.eq(~mantissa_fits(a.value))]
            with m.Case(ScalarKind.EXP):
                m.d.comb += [value.eq(a.exp), alu_error.eq(~mantissa_fits(a.value))]
            with m.Case(ScalarKind.SHR):
                m.d.comb += value.eq(a.value >> right)
            with m.Case(ScalarKind.NORM_SHIFT):
                m.d.comb += value.eq(Mux(bitlen > nx.NORM_MAX_BITLEN, bitlen - nx.NORM_MAX_BITLEN, 0))
            with m.Case(ScalarKind.CODE_SHIFT):
                m.d.comb += value.eq(Mux(bitlen == 0, 0, bitlen - nx.NORM_MAX_BITLEN))
            with m.Case(ScalarKind.SCALE):
                m.d.comb += [is_scale.eq(1), value.eq(a.value), alu.exp.eq(amount),
                             alu_error.eq(~fits(amount, exp_bits))]
            with m.Case(ScalarKind.SELECT):
                m.d.comb += [value.eq(Mux(selector.value != 0, b.value, a.value)),
                             alu.exp.eq(Mux(selector.value != 0, b.exp, a.exp))]
        m.d.comb += alu.value.eq(value)
        # only INT and ADD_INT can leave a register: their sums are checked apart from the other
        # kinds' results (no comparison or shift before the check), and SCALE's mantissa is a's
        summed = Signal(signed(REGISTER_BITS + 4))
        m.d.comb += summed.eq(Mux(op.kind == ScalarKind.INT, amount, a.value + amount))
        m.d.comb += alu_checks.eq(alu_error | ((op.kind == ScalarKind.INT) | (op.kind == ScalarKind.ADD_INT))
                                  & ~fits(summed, REGISTER_BITS) | is_scale & ~mantissa_fits(a.value))

        # MUL_INT: a 36 × 18 product, registered
        product = Signal(signed(A_BITS + B_BITS))
        product_error = Signal()
        m.d.sync += [product.eq(a.value[:A_BITS].as_signed() * b.value[:B_BITS].as_signed()),
                     product_error.eq(~fits(a.value, A_BITS) | ~fits(b.value, B_BITS))]

        # MUL: normalized scales (or 0), two pipeline stages from the registered operands
        m.submodules.multiplier = multiplier = NormalizedScaleMultiplier(exp_bits)
        m.d.comb += [multiplier.i.a.mant.eq(a.value), multiplier.i.a.exp.eq(a.exp),
                     multiplier.i.b.mant.eq(b.value), multiplier.i.b.exp.eq(b.exp)]
        mul_wait = Signal(range(NormalizedScaleMultiplier.latency_of()))

        # CODE_RECIP: m_n = a shifted by b, then floor((2^33 − 1) / m_n) + 1 two bits a cycle: the
        # trial less m_n, 2·m_n and 3·m_n side by side (one carry chain each), the largest that fits
        peak = Signal(nx.NORM_MAX_BITLEN)
        peak3 = Signal(nx.NORM_MAX_BITLEN + 2)      # 3·m_n, formed in the first step (all ones before)
        remainder = Signal(nx.NORM_MAX_BITLEN)
        quotient = Signal(QUOTIENT_BITS)
        step = Signal(range(DIVIDE_STEPS + 1))
        trial = Cat(Const(0b11, 2), remainder)      # every dividend bit brought down is a one
        differences = [Signal(signed(nx.NORM_MAX_BITLEN + 4), name=f"trial_less_{k}") for k in (1, 2, 3)]
        m.d.comb += [differences[0].eq(trial - peak), differences[1].eq(trial - (peak << 1)),
                     differences[2].eq(trial - peak3)]
        digit = Signal(2)
        m.d.comb += digit.eq(Mux(~differences[2][-1], 3,
                                 Mux(~differences[1][-1], 2, Mux(~differences[0][-1], 1, 0))))

        # FROM_INT (scale_from_int): the shift s = bitlen(n) − 16 (EXECUTE), t = n shifted to 17
        # bits, right by s − 1 or left by 1 − s, and the exponent before the rounding's carry
        # (NORMALIZE), then the mantissa (t + 1) >> 1, one bit less where that carries to 2^16 (ROUND)
        from_shift = Signal(signed(8))
        t = Signal(nx.SCALE_BITS + 1)
        from_exp = Signal(signed(REGISTER_BITS + 4))
        rounded = Signal(nx.SCALE_BITS + 1)
        m.d.comb += rounded.eq((t + 1) >> 1)
        carry = rounded[nx.SCALE_BITS]

        # -- the operation ---------------------------------------------------------------------
        kind = op.kind
        command = scale_unit.i.payload
        m.d.comb += [command.a.mant.eq(a.value),
                     command.a.exp.eq(a.exp),
                     command.b.mant.eq(b.value), command.b.exp.eq(b.exp)]
        with m.Switch(kind):
            for k, code in SCALE_OPS.items():
                with m.Case(k):
                    m.d.comb += command.op.eq(code)
        scale_error = Signal()
        with m.Switch(kind):
            with m.Case(ScalarKind.MUL, ScalarKind.ADD):
                m.d.comb += scale_error.eq(~mantissa_fits(a.value) | ~fits(a.exp, exp_bits)
                                           | ~mantissa_fits(b.value) | ~fits(b.exp, exp_bits))
            with m.Case(ScalarKind.RECIP, ScalarKind.RSQRT):
                m.d.comb += scale_error.eq(~mantissa_fits(a.value) | (a.value == 0))

        writes = Signal()
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [idle.eq(1), self.i.ready.eq(1)]
                with m.If(self.i.valid):
                    m.d.sync += op.eq(self.i.payload)
                    m.next = "OPERANDS"
            with m.State("OPERANDS"):
                m.d.comb += [self.busy.eq(1), load_operands.eq(1)]
                with m.Switch(kind):
                    with m.Case(*PREPARED):
                        m.next = "PREPARE"
                    with m.Default():
                        m.next = "EXECUTE"
            with m.State("PREPARE"):
                m.d.comb += [self.busy.eq(1), prepare.eq(1)]
                with m.Switch(kind):
                    with m.Case(*MEASURED):
                        m.next = "MEASURE"
                    with m.Default():
                        m.next = "EXECUTE"
            with m.State("MEASURE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += bitlen.eq(measured)
                m.next = "EXECUTE"
            with m.State("EXECUTE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [writes.eq(1), error.eq(0)]
                with m.Switch(kind):
                    with m.Case(*SCALE_OPS):
                        with m.If(scale_error):
                            m.d.sync += error.eq(1)
                            m.next = "WRITE"
                        with m.Else():
                            m.next = "SCALE"
                    with m.Case(ScalarKind.MUL_INT):
                        m.next = "PRODUCT"
                    with m.Case(ScalarKind.FROM_INT):
                        m.d.sync += [from_shift.eq(bitlen - nx.SCALE_BITS), error.eq(a.value[-1])]
                        m.next = "NORMALIZE"
                    with m.Case(ScalarKind.MUL):
                        m.d.sync += [mul_wait.eq(0), error.eq(scale_error)]
                        m.next = "MUL"
                    with m.Case(ScalarKind.CODE_RECIP):
                        m.d.sync += [peak.eq(shifted), peak3.eq(-1), quotient.eq(0), step.eq(DIVIDE_STEPS),
                                     remainder.eq((1 << (nx.RECIP_SHIFT - QUOTIENT_BITS)) - 1),
                                     error.eq(a.value[-1] | (a.value != 0) & (code_bitlen != bitlen))]
                        m.next = "DIVIDE"
                    with m.Case(ScalarKind.LOAD):      # its address read once the port is free
                        m.d.comb += self.access.addr.eq(op.address)
                        with m.If(self.access_ready):
                            m.next = "LOADED"
                    with m.Case(ScalarKind.STORE):
                        m.d.comb += [self.access.addr.eq(op.address), self.access.data.eq(a.value),
                                     self.access.write.eq(fits(a.value, ELEMENT_BITS))]
                        m.d.sync += [writes.eq(0), error.eq(~fits(a.value, ELEMENT_BITS))]
                        m.next = "WRITE"
                    with m.Default():
                        m.d.sync += [result.eq(alu), error.eq(alu_checks)]
                        m.next = "WRITE"
            with m.State("SCALE"):
                m.d.comb += [self.busy.eq(1), scale_unit.i.valid.eq(1)]
                with m.If(scale_unit.i.ready):
                    m.next = "SCALE_RESULT"
            with m.State("SCALE_RESULT"):
                m.d.comb += [self.busy.eq(1), scale_unit.o.ready.eq(1)]
                with m.If(scale_unit.o.valid):
                    m.d.sync += [result.value.eq(scale_unit.o.payload.mant),
                                 result.exp.eq(scale_unit.o.payload.exp),
                                 error.eq(scale_unit.o.payload.invalid)]
                    m.next = "WRITE"
            with m.State("MUL"):         # the operands entered the multiplier in EXECUTE
                m.d.comb += self.busy.eq(1)
                m.d.sync += mul_wait.eq(mul_wait + 1)
                with m.If(mul_wait == NormalizedScaleMultiplier.latency_of() - 1):
                    m.d.sync += [result.value.eq(multiplier.o.mant), result.exp.eq(multiplier.o.exp),
                                 error.eq(error | multiplier.o.invalid)]
                    m.next = "WRITE"
            with m.State("NORMALIZE"):
                m.d.comb += self.busy.eq(1)
                # s in [-16, 31]: left by 1 − s in [1, 17], or right by s − 1 in [0, 30]
                left_by, right_by = (1 - from_shift)[:5], (from_shift - 1)[:5]
                m.d.sync += [t.eq(Mux(from_shift[-1] | (from_shift == 0), magnitude << left_by,
                                      magnitude >> right_by)),
                             from_exp.eq(amount + from_shift)]
                m.next = "ROUND"
            with m.State("ROUND"):
                m.d.comb += self.busy.eq(1)
                exponent = from_exp + carry
                zero = magnitude == 0
                m.d.sync += [result.value.eq(Mux(zero, 0, Mux(carry, rounded >> 1, rounded))),
                             result.exp.eq(Mux(zero, 0, exponent)),
                             error.eq(error | ~zero & ~fits(exponent, exp_bits))]
                m.next = "WRITE"
            with m.State("PRODUCT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [result.value.eq(product),
                             error.eq(product_error | ~fits(product, REGISTER_BITS))]
                m.next = "WRITE"
            with m.State("DIVIDE"):
                # the dividend 2^33 − 1, two bits a cycle: its top 15 bits are below m_n (>= 2^16),
                # so the remainder starts at them (2^15 − 1) and the quotient's 18 bits take 9
                # steps; the first step's trial (< 2^17) is below 2·m_n, so 3·m_n is formed meanwhile
                m.d.comb += self.busy.eq(1)
                with m.Switch(digit):
                    for value, remaining in enumerate((trial, *differences)):
                        with m.Case(value):
                            m.d.sync += remainder.eq(remaining)
                m.d.sync += [peak3.eq(peak + (peak << 1)), quotient.eq(Cat(digit, quotient)),
                             step.eq(step - 1)]
                with m.If(step == 1):
                    m.next = "RECIPROCAL"
            with m.State("RECIPROCAL"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += result.value.eq(Mux(a.value == 0, 0, quotient + 1))
                m.next = "WRITE"
            with m.State("LOADED"):         # the element of the address EXECUTE gave
                m.d.comb += self.busy.eq(1)
                m.d.sync += [result.value.eq(self.access_data), result.exp.eq(0)]
                m.next = "WRITE"
            with m.State("WRITE"):           # written, and answered (held in ANSWER until taken)
                m.d.comb += [self.busy.eq(1), port_w.addr.eq(op.result), port_w.data.eq(result),
                             port_w.en.eq(writes & ~error), self.o.valid.eq(1),
                             self.o.payload.error.eq(error)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "ANSWER"
            with m.State("ANSWER"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.error.eq(error)]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        with m.If(idle):
            m.d.comb += [port_w.addr.eq(self.write.addr), port_w.data.eq(self.write.data),
                         port_w.en.eq(self.write.en)]
        return m
