"""The engine's scalar arithmetic on scales, exactly ``model.numerics`` §3.

A scale is ``mant · 2^exp`` with a 16-bit mantissa (``mant`` in [2^15, 2^16), or 0 for the scale
0) and a signed exponent. Every dequantization factor the integer model uses is built from a
handful of these operations per token and layer (``rms_quantize``: two from-ints, six products,
one sum and one rsqrt), so one small sequential unit serves the whole engine:

=========  ===================================  ===========================  ==================
op         result                               numerics function            cycles (accept→out)
=========  ===================================  ===========================  ==================
MUL        a · b                                ``scale_mul(a, b)``          ``MULTIPLY + NORMALIZE + 2``
ADD        a + b                                ``scale_add(a, b)``          ``ALIGN + NORMALIZE + 2``
FROM_INT   n · 2^a.exp                          ``scale_from_int(n, a.exp)`` ``NORMALIZE + 2``
RECIP      1 / a                                ``scale_recip(a)``           ``DIVIDE + NORMALIZE + 2``
RSQRT      1 / sqrt(a)                          ``scale_rsqrt(a)``           ``SQRT + DIVIDE + 2·NORMALIZE + 2``
=========  ===================================  ===========================  ==================

A command is registered as it is taken and its op decoded in the next cycle (``DECODE``). Every
result goes through one normalizer (``scale_from_int``), a pipeline of four cycles: find the
leading nonzero byte; shift the leading one into the top byte by whole bytes; keep the 17 bits
from the leading one; round half up (``((v >> (s - 1)) + 1) >> 1``, a carry out renormalizes).
MUL multiplies the registered mantissas (its one 16×16 product, the unit's only multiplier) into
the normalizer's operand register; ADD takes a cycle to order the operands by exponent, one to
shift the smaller into place and one to add.
RECIP divides the constant 2^31 by the mantissa with a restoring divider, one quotient bit per
cycle: 17 for a normalized mantissa (the quotient is at most 2^16; the engine's scales are all
normalized), 32 for any other; RSQRT takes the integer square root of ``mant · 2^(30 + odd)`` one result bit per cycle,
normalizes it and takes its reciprocal. Divider and square root share one trial subtraction.

``o.payload.invalid`` is set (and ``mant``, ``exp`` are 0) where numerics raises or the exponent does
not fit ``exp_bits``: RECIP or RSQRT of the scale 0, or a result exponent out of range.
The unit takes one command at a time (``i.ready`` is low while it works); ``cycles(op)`` is the
number of clock edges from the edge that accepts a command to the first edge its result is valid
(for RECIP of a normalized mantissa: 15 more for an unnormalized one).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import SCALE_ALIGN_BITS, SCALE_BITS, SCALE_EXP_BITS

from .arith import check_integers, top_bit_tree

RECIP_DIVIDEND_SHIFT = 2 * SCALE_BITS - 1   # 1/a = floor(2^31 / mant) · 2^(-31 - exp)
RSQRT_SHIFT = 30                            # isqrt(mant · 2^(30 + odd)): a 23-bit root
ROOT_BITS = (SCALE_BITS + 1 + RSQRT_SHIFT + 1) // 2
ADD_BITS = SCALE_BITS + SCALE_ALIGN_BITS + 1          # two aligned mantissas and their carry
QUOTIENT_BITS = RECIP_DIVIDEND_SHIFT + 1              # floor(2^31 / mant) for any mant >= 1
# floor(2^31 / mant) <= 2^16 for a normalized mant (>= 2^15): its bits from 17 up are 0, so the
# division starts at bit 16 with the dividend's bits above it brought down (remainder 2^14)
NORMALIZED_QUOTIENT_BITS = RECIP_DIVIDEND_SHIFT - SCALE_BITS + 2
NORMALIZED_REMAINDER = 1 << (RECIP_DIVIDEND_SHIFT - NORMALIZED_QUOTIENT_BITS)
EXP_GUARD_BITS = 3                                    # headroom: two exponents summed, normalized by < 64


class ScaleOp(enum.Enum, shape=3):
    MUL = 0
    ADD = 1
    FROM_INT = 2
    RECIP = 3
    RSQRT = 4


def scale_layout(exp_bits: int) -> data.StructLayout:
    return data.StructLayout({"mant": unsigned(SCALE_BITS), "exp": signed(exp_bits)})


def from_int_stages(m: Module, value, valid, exp, exp_bits: int, name: str):
    """``scale_from_int(value, exp)`` (``model.numerics``) in two pipeline stages after ``value``
    (unsigned, the caller's register, valid with ``valid``; ``exp`` signed, holding through the
    first stage); returns the registered ``(scale, invalid, valid)``.

    1. The top 17 bits (the leading one at bit 16, truncated) and the exponent ``L − 16 + exp``:
       the value is normalized in a field of a power of two bits, 2^n, by its top bit's index
       inverted (2^n − 1 − index, n bits), so that no adder lies between the index and the shift
       (with ``L`` and ``2^n − L``, two carry chains, it was the ULX3S-85F's slowest path at 60.7 MHz);
       the exponent's range is checked beside it for a carry of 0 and of 1.
    2. Rounded half up to 16 bits, a carry to 2^16 renormalized; 0 stays (0, 0), and an exponent out
       of ``exp_bits`` gives (0, 0) and ``invalid``, as the ScaleUnit's FROM_INT."""
    index, _ = top_bit_tree(value)               # (a zero value: top is 0, and so is the scale)
    n = max(len(index), SCALE_BITS.bit_length())   # 2^n >= the value's width and 17
    field = 1 << n
    limit = 1 << (exp_bits - 1)
    top, top_valid = Signal(SCALE_BITS + 1, name=f"{name}_top"), Signal(name=f"{name}_top_valid")
    top_exp = Signal(signed(exp_bits + 2), name=f"{name}_top_exp")
    outside = [Signal(name=f"{name}_outside{carry}") for carry in (0, 1)]
    wide, shift = Signal(field), Signal(n)
    exponent = Signal(signed(max(len(exp), n + 1) + 2), name=f"{name}_exponent")
    m.d.comb += [wide.eq(value), shift.eq(~Cat(index, Const(0, n - len(index)))),
                 exponent.eq(index + 1 - SCALE_BITS + exp)]
    m.d.sync += [top.eq((wide << shift)[field - SCALE_BITS - 1:field]), top_exp.eq(exponent),
                 top_valid.eq(valid),
                 *(flag.eq((exponent + carry < -limit) | (exponent + carry >= limit))
                   for carry, flag in enumerate(outside))]
    rounded = Signal(SCALE_BITS + 1, name=f"{name}_rounded")
    m.d.comb += rounded.eq((top + 1) >> 1)
    carry = rounded[SCALE_BITS]
    bad = (top != 0) & Mux(carry, outside[1], outside[0])
    scale, invalid, out_valid = (Signal(scale_layout(exp_bits), name=name), Signal(name=f"{name}_invalid"),
                                 Signal(name=f"{name}_valid"))
    m.d.sync += [scale.mant.eq(Mux((top == 0) | bad, 0, Mux(carry, rounded >> 1, rounded))),
                 scale.exp.eq(Mux((top == 0) | bad, 0, top_exp + carry)), invalid.eq(bad),
                 out_valid.eq(top_valid)]
    return scale, invalid, out_valid


def scale_unit_signature(exp_bits: int, int_bits: int) -> wiring.Signature:
    """A :class:`ScaleUnit`'s ports: commands in (``i``), results out (``o``). A block that runs its
    programs on a shared unit holds them flipped (:func:`scale_unit_members`)."""
    scale = scale_layout(exp_bits)
    return wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "op": ScaleOp, "a": scale, "b": scale, "n": unsigned(int_bits)}))),
        "o": Out(stream.Signature(data.StructLayout({
            "mant": unsigned(SCALE_BITS), "exp": signed(exp_bits), "invalid": 1}))),
    })


def scale_unit_members(shared: bool, exp_bits: int, int_bits: int) -> dict:
    """The signature members of a block with ``shared_scale``: a ``scale_unit`` port to a
    :class:`SharedScaleUnit` when shared, none when the block has its own unit."""
    return {"scale_unit": Out(scale_unit_signature(exp_bits, int_bits).flip())} if shared else {}


def scale_unit_of(m: Module, block: wiring.Component, *, exp_bits: int, int_bits: int):
    """The ScaleUnit ``block`` runs its programs on: its ``scale_unit`` port, or a unit of its own
    added to ``m``."""
    if "scale_unit" in block.signature.members:
        return block.scale_unit
    m.submodules.scale_unit = unit = ScaleUnit(exp_bits=exp_bits, int_bits=int_bits)
    return unit


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

    DECODE = 1                     # the registered command's op
    NORMALIZE = 4                  # leading byte found, shifted; leading bit; rounding
    MULTIPLY = 1                   # the registered operands' product
    ALIGN = 3                      # order by exponent, shift, add
    DIVIDE = NORMALIZED_QUOTIENT_BITS   # one quotient bit a cycle (QUOTIENT_BITS unnormalized)
    SQRT = ROOT_BITS               # one root bit a cycle

    def __init__(self, *, exp_bits: int = SCALE_EXP_BITS, int_bits: int = 48):
        check_integers((("exp_bits", exp_bits, 6, 24), ("int_bits", int_bits, 1, 64)))
        self._exp_bits, self._int_bits = exp_bits, int_bits
        super().__init__(scale_unit_signature(exp_bits, int_bits))
        # high from the edge that takes a command until its result is taken (for the proofs:
        # tests/hw/test_formal.py)
        self.busy = Signal()

    exp_bits = property(lambda self: self._exp_bits)
    int_bits = property(lambda self: self._int_bits)
    exp_range = property(lambda self: range(-(1 << (self._exp_bits - 1)), 1 << (self._exp_bits - 1)))

    def cycles(self, op: ScaleOp) -> int:
        """Clock edges from the edge that accepts an ``op`` command to the first its result is valid
        (RECIP: of a normalized mantissa)."""
        return self.cycles_of(op)

    @staticmethod
    def cycles_of(op: ScaleOp) -> int:
        """:meth:`cycles` without a unit (the unit's timing does not depend on its widths)."""
        unit = ScaleUnit
        return unit.DECODE + {ScaleOp.MUL: unit.MULTIPLY + unit.NORMALIZE + 1,
                              ScaleOp.ADD: unit.ALIGN + unit.NORMALIZE + 1,
                              ScaleOp.FROM_INT: unit.NORMALIZE + 1,
                              ScaleOp.RECIP: unit.DIVIDE + unit.NORMALIZE + 1,
                              ScaleOp.RSQRT: unit.SQRT + unit.DIVIDE + 2 * unit.NORMALIZE + 1}[ScaleOp(op)]

    def elaborate(self, platform):
        m = Module()
        exp_bits = self._exp_bits
        value_bits = -(-max(self._int_bits, ADD_BITS, QUOTIENT_BITS) // 8) * 8   # whole bytes
        cmd = self.i.payload

        op = Signal(ScaleOp)
        mant = Signal(SCALE_BITS + 1)       # a's mantissa, the divisor, the 17 leading bits, the result
        b_mant = Signal(SCALE_BITS)
        b_exp = Signal(signed(exp_bits))
        exp = Signal(signed(exp_bits + EXP_GUARD_BITS))   # the exponent of what is in the works
        value = Signal(value_bits)          # the normalizer's operand value · 2^exp; 0 between commands
        distance = Signal(6)                # ADD: how far the smaller operand is shifted right
        invalid = Signal()
        second_pass = Signal()              # RSQRT: the root is normalized, the reciprocal is next

        # One trial subtraction a cycle serves the restoring divider (floor(2^31 / mant), a quotient
        # bit a cycle) and the square root (isqrt(radicand · 2^30), a root bit a cycle); both shift
        # their result bits into ``value``, which starts at 0.
        step = Signal(range(max(QUOTIENT_BITS, ROOT_BITS)))
        radicand = Signal(SCALE_BITS + 2)   # mant · 2^odd, two bits brought down a cycle
        remainder = Signal(ROOT_BITS + 1)
        rooting = Signal()
        first_divide = Signal()             # the division's first step (it sets the exponent)
        trial = Mux(rooting, Cat(radicand[-2:], remainder), Cat(step == QUOTIENT_BITS - 1, remainder))
        subtrahend = Mux(rooting, Cat(Const(1, 2), value[:ROOT_BITS]), mant[:SCALE_BITS])
        difference = Signal(len(trial) + 1)
        m.d.comb += difference.eq(trial - subtrahend)
        fits = ~difference[-1]

        # One adder updates the exponent: exp ← exp_base + exp_addend (exp itself plus 0 by default).
        exp_base = Signal.like(exp)
        exp_addend = Signal(signed(max(exp_bits, 8)))
        exp_sum = Signal.like(exp)
        m.d.comb += [exp_base.eq(exp), exp_sum.eq(exp_base + exp_addend)]

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                # the command is only registered here and decoded in the next cycle, so that
                # whatever chooses it (an arbiter over several clients) ends at these registers
                with m.If(self.i.valid):
                    m.d.sync += [op.eq(cmd.op), mant.eq(cmd.a.mant), b_mant.eq(cmd.b.mant),
                                 b_exp.eq(cmd.b.exp), exp.eq(cmd.a.exp), value.eq(cmd.n),
                                 second_pass.eq(0)]
                    m.next = "DECODE"

            with m.State("DECODE"):
                short = (op == ScaleOp.RECIP) & mant[SCALE_BITS - 1]   # a normalized divisor
                m.d.sync += [invalid.eq(((op == ScaleOp.RECIP) | (op == ScaleOp.RSQRT))
                                        & (mant[:SCALE_BITS] == 0)),
                             radicand.eq(Mux(exp[0], mant[:SCALE_BITS] << 1, mant[:SCALE_BITS])),
                             remainder.eq(Mux(short, NORMALIZED_REMAINDER, 0)), first_divide.eq(1),
                             step.eq(Mux(op == ScaleOp.RSQRT, ROOT_BITS - 1,
                                         Mux(short, NORMALIZED_QUOTIENT_BITS, QUOTIENT_BITS) - 1))]
                with m.If(op != ScaleOp.FROM_INT):
                    m.d.sync += value.eq(0)
                with m.Switch(op):
                    with m.Case(ScaleOp.MUL):
                        m.next = "MULTIPLY"
                    with m.Case(ScaleOp.ADD):
                        m.next = "ORDER"
                    with m.Case(ScaleOp.FROM_INT):
                        m.next = "LEAD"
                    with m.Case(ScaleOp.RECIP):
                        m.next = "DIVIDE"
                    with m.Case(ScaleOp.RSQRT):
                        m.next = "SQRT"
                    with m.Default():
                        m.d.sync += invalid.eq(1)
                        m.next = "DONE"

            with m.State("MULTIPLY"):
                m.d.comb += exp_addend.eq(b_exp)
                m.d.sync += [value.eq(mant[:SCALE_BITS] * b_mant), exp.eq(exp_sum)]
                m.next = "LEAD"

            with m.State("ORDER"):
                # A zero operand takes the other's exponent: the larger operand goes to mant, the
                # smaller to b_mant (0 if shifted 64+ places), the larger exponent to exp.
                a_minus_b, b_minus_a = Signal(signed(len(exp) + 1)), Signal(signed(len(exp) + 1))
                m.d.comb += [a_minus_b.eq(exp - b_exp), b_minus_a.eq(b_exp - exp)]
                a_zero, b_zero = mant[:SCALE_BITS] == 0, b_mant == 0
                swap = a_zero | (~b_zero & a_minus_b[-1])
                gap = Mux(swap, b_minus_a, a_minus_b)
                far = gap[len(distance):].any()
                m.d.sync += [mant.eq(Mux(swap, b_mant, mant)),
                             b_mant.eq(Mux(far, 0, Mux(swap, mant, b_mant))),
                             exp.eq(Mux(swap, b_exp, exp)), distance.eq(gap)]
                m.next = "ALIGN"
            with m.State("ALIGN"):
                # Both aligned to the larger exponent with SCALE_ALIGN_BITS guard bits (floor): the
                # smaller shifted in this cycle (into value), added in the next.
                m.d.sync += value.eq(Cat(Const(0, SCALE_ALIGN_BITS), b_mant) >> distance)
                m.next = "SUM"
            with m.State("SUM"):
                shifted = value[:SCALE_ALIGN_BITS + SCALE_BITS]
                m.d.sync += [value.eq(Cat(shifted[:SCALE_ALIGN_BITS],
                                          mant[:SCALE_BITS] + shifted[SCALE_ALIGN_BITS:])),
                             exp.eq(exp_sum)]
                m.d.comb += exp_addend.eq(-SCALE_ALIGN_BITS)
                m.next = "LEAD"

            with m.State("DIVIDE"):
                m.d.sync += [remainder.eq(Mux(fits, difference, trial)), value.eq(Cat(fits, value)),
                             step.eq(step - 1), exp.eq(exp_sum), first_divide.eq(0)]
                with m.If(first_divide):   # -RECIP_DIVIDEND_SHIFT - exp
                    m.d.comb += [exp_base.eq(~exp), exp_addend.eq(1 - RECIP_DIVIDEND_SHIFT)]
                with m.If(step == 0):
                    m.next = "LEAD"
            with m.State("SQRT"):
                m.d.comb += rooting.eq(1)
                m.d.sync += [remainder.eq(Mux(fits, difference, trial)), value.eq(Cat(fits, value)),
                             radicand.eq(radicand << 2), step.eq(step - 1), exp.eq(exp_sum)]
                with m.If(step == ROOT_BITS - 1):   # (exp - odd - RSQRT_SHIFT) / 2
                    m.d.comb += [exp_base.eq(exp >> 1), exp_addend.eq(-(RSQRT_SHIFT // 2))]
                with m.If(step == 0):
                    m.next = "LEAD"

            # scale_from_int in four steps: find the leading nonzero byte, shift the leading one
            # into the top byte by whole bytes, then to the top bit, keeping 17 bits; round half
            # up (a carry renormalizes).
            chunks = value_bits // 8
            lead = Signal(range(chunks))                            # leading zero bytes
            with m.State("LEAD"):
                # (a register of its own: the byte search and the exponent's adder in one cycle
                # were the ULX3S-85F's slowest path)
                m.d.sync += lead.eq(chunks - 1)
                for k in range(1, chunks):
                    with m.If(value[8 * k:8 * k + 8].any()):
                        m.d.sync += lead.eq(chunks - 1 - k)
                m.next = "COARSE"
            with m.State("COARSE"):
                padded = Cat(Const(0, 16), value)
                coarse = Signal(24)
                adjust = Signal(signed(8))
                with m.Switch(lead):
                    for k in range(chunks):
                        with m.Case(k):
                            m.d.comb += [coarse.eq(padded[value_bits - 8 - 8 * k:value_bits + 16 - 8 * k]),
                                         adjust.eq(value_bits - SCALE_BITS - 8 * k)]
                m.d.comb += exp_addend.eq(adjust)
                # and ready the divider for RSQRT's second pass (a normalized root)
                m.d.sync += [value[-24:].eq(coarse), exp.eq(exp_sum), first_divide.eq(1),
                             remainder.eq(NORMALIZED_REMAINDER), step.eq(NORMALIZED_QUOTIENT_BITS - 1)]
                m.next = "FINE"
            with m.State("FINE"):
                top = value[-24:]
                lead = Signal(range(8))                             # leading zero bits
                m.d.comb += lead.eq(7)
                for k in range(1, 8):
                    with m.If(top[16 + k]):
                        m.d.comb += lead.eq(7 - k)
                with m.Switch(lead):
                    for k in range(8):
                        with m.Case(k):
                            m.d.sync += mant.eq(top[7 - k:24 - k])
                m.d.comb += exp_addend.eq(-lead)
                m.d.sync += exp.eq(exp_sum)
                m.next = "ROUND"
            with m.State("ROUND"):
                # ((v >> (s - 1)) + 1) >> 1 on the 17 leading bits; all ones round up to 2^16.
                rounded = Signal(SCALE_BITS + 1)
                m.d.comb += rounded.eq(mant[1:] + mant[0])
                m.d.sync += [mant.eq(Cat(rounded[:SCALE_BITS - 1], rounded[SCALE_BITS - 1:].any())),
                             exp.eq(Mux(mant == 0, 0, exp_sum)), value.eq(0)]
                m.d.comb += exp_addend.eq(mant.all())
                with m.If((op == ScaleOp.RSQRT) & ~second_pass):
                    m.d.sync += second_pass.eq(1)
                    m.next = "DIVIDE"
                with m.Else():
                    m.next = "DONE"

            with m.State("DONE"):
                high = exp[exp_bits - 1:]
                bad = invalid | (high.any() & ~high.all())
                m.d.comb += [self.o.valid.eq(1), self.o.payload.invalid.eq(bad),
                             self.o.payload.mant.eq(Mux(bad, 0, mant)),
                             self.o.payload.exp.eq(Mux(bad, 0, exp))]
                with m.If(self.o.ready):
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m


class SharedScaleUnit(wiring.Component):
    """One :class:`ScaleUnit` serving several blocks, one command and its result at a time.

    Each client is a member named after it, with a ScaleUnit's ports (:func:`scale_unit_signature`;
    its ``int_bits`` its own, zero-extended to the unit's). When the unit is free it takes the
    command of the first waiting client in ``clients`` order, and it is that client's until the
    client takes the result: a client sees its own unit's handshakes, later by the cycles others
    hold the unit (at most one program each, as every client takes its result at once). No latency
    is added: the choice is made in the cycle the command is taken.

    Parameters
    ----------
    clients : dict
        Client names (valid Python identifiers) to the width of their FROM_INT operand, in priority
        order.
    exp_bits : int
        Signed exponent width of every client's scales.
    """

    def __init__(self, clients: dict, *, exp_bits: int = SCALE_EXP_BITS):
        if not clients:
            raise ValueError("a SharedScaleUnit needs at least one client")
        for name, int_bits in clients.items():
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"client names must be Python identifiers without a leading _, "
                                 f"not {name!r}")
            check_integers(((f"int_bits of {name}", int_bits, 1, 64),))
        self._clients = dict(clients)
        self._exp_bits = exp_bits
        super().__init__({name: Out(scale_unit_signature(exp_bits, int_bits))
                          for name, int_bits in clients.items()})
        # the unit, and whose command it took last (for the proofs: tests/hw/test_formal.py)
        self.unit = ScaleUnit(exp_bits=exp_bits, int_bits=max(clients.values()))
        self.owner = Signal(range(len(clients)))

    clients = property(lambda self: tuple(self._clients))

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = self.unit
        ports = [getattr(self, name) for name in self._clients]
        waiting = Signal(len(ports))
        choice = Signal(range(len(ports)))      # the first waiting client
        owner = self.owner
        m.d.comb += waiting.eq(Cat(port.i.valid for port in ports))
        for index in reversed(range(len(ports))):
            with m.If(waiting[index]):
                m.d.comb += choice.eq(index)
        with m.If(unit.i.valid & unit.i.ready):
            m.d.sync += owner.eq(choice)
        m.d.comb += unit.i.valid.eq(waiting.any())
        with m.Switch(choice):
            for index, port in enumerate(ports):
                with m.Case(index):
                    m.d.comb += [unit.i.payload.op.eq(port.i.payload.op),
                                 unit.i.payload.a.eq(port.i.payload.a),
                                 unit.i.payload.b.eq(port.i.payload.b),
                                 unit.i.payload.n.eq(port.i.payload.n)]
        for index, port in enumerate(ports):
            mine = owner == index
            m.d.comb += [port.i.ready.eq(unit.i.ready & (choice == index)),
                         port.o.valid.eq(unit.o.valid & mine), port.o.payload.eq(unit.o.payload)]
            with m.If(mine):
                m.d.comb += unit.o.ready.eq(port.o.ready)
        return m


class ScaleProgram:
    """A straight-line program of ScaleUnit commands, run as three states of the caller's FSM.

    ``program`` rows are ``(result, op, a, b, integer)``: ``a`` and ``b`` name earlier results or
    entries of ``sources`` (scale-layout values); ``integer`` names an entry of ``integers``, an
    ``(n, exp)`` pair for FROM_INT (``n · 2^exp``). Results are registers (``results[name]``),
    shared where their lives do not overlap (:meth:`registers_of`): a result that a later command
    reads is gone after that command; one that no command reads (the caller's) lasts to the end.
    ``invalid`` is the OR of the unit's invalid flags over the run. Each command is registered
    before it is offered, so the unit (shared, and placed away from its clients) sees registers
    only: a cycle a command.
    """

    def __init__(self, program, exp_bits: int):
        self.program = program
        layout = scale_layout(exp_bits)
        assignment = self.registers_of(program)
        registers = [Signal(layout, name="r_" + "_".join(name for name, k in assignment.items() if k == slot))
                     for slot in range(max(assignment.values()) + 1)]
        self.results = {name: registers[slot] for name, slot in assignment.items()}
        self.step = Signal(range(len(program)))
        self.invalid = Signal()

    @staticmethod
    def registers_of(program) -> dict:
        """Each result's register (an index): a command's result may take the register of one
        whose last reader is that command or an earlier one (its operands are registered before
        its result is written), so a program has as many registers as results live at once. A
        result no command reads is the caller's: it has a register of its own, which the next
        run does not write before its own command."""
        last_read = {}
        for step, (_, _, a, b, _) in enumerate(program):
            last_read.update({name: step for name in (a, b) if name is not None})
        assignment, free_from = {}, []       # free_from[k]: the first command that may write k
        for step, (name, *_) in enumerate(program):
            kept = name not in last_read
            slot = len(free_from) if kept else next(
                (k for k, first in enumerate(free_from) if first <= step), len(free_from))
            if slot == len(free_from):
                free_from.append(0)
            assignment[name] = slot
            free_from[slot] = len(program) if kept else last_read[name]
        return assignment

    def start(self):
        """Statements (sync) that make the next run begin at the first command."""
        return [self.step.eq(0), self.invalid.eq(0)]

    @staticmethod
    def cycles(program) -> int:
        """Clock edges from entering the issue state to leaving the result state for the last time:
        per command, its register, the unit's cycles and the result taken."""
        return sum(ScaleUnit.cycles_of(op) + 2 for _, op, *_ in program)

    def states(self, m, unit, sources: dict, integers: dict, issue: str, result: str, done: str):
        """States ``issue`` (the command registered), ``issue + "_OFFER"`` (offered to ``unit``)
        and ``result`` (its result stored), then ``done`` after the last command."""
        sources = {**sources, **self.results}
        offer = f"{issue}_OFFER"
        command = Signal.like(unit.i.payload, name="command")
        with m.State(issue):
            m.d.sync += command.eq(0)
            with m.Switch(self.step):
                for index, (_, op, a, b, integer) in enumerate(self.program):
                    with m.Case(index):
                        m.d.sync += command.op.eq(op)
                        if a:
                            m.d.sync += command.a.eq(sources[a])
                        if b:
                            m.d.sync += command.b.eq(sources[b])
                        if integer:
                            n, exp = integers[integer]
                            m.d.sync += [command.n.eq(n), command.a.exp.eq(exp)]
            m.next = offer
        with m.State(offer):
            m.d.comb += [unit.i.valid.eq(1), unit.i.payload.eq(command)]
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

    @staticmethod
    def latency_of() -> int:
        """Cycles from ``i`` to ``o`` (two pipeline stages)."""
        return 2

    latency = property(lambda self: self.latency_of())

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
        valid = Signal()
        # the result's exponent is the sum plus 15, 16 or 17 (the leading one at bit 30 or 31, and
        # the rounding's carry): all three and whether each is in range are made beside the
        # product, so the second stage only chooses (its rounding add the one carry chain)
        limit = 1 << (exp_bits - 1)
        exps = [Signal(signed(exp_bits + 2), name=f"exp{offset}") for offset in (15, 16, 17)]
        out_of_range = [Signal(name=f"out_of_range{offset}") for offset in (15, 16, 17)]
        exp_sum = self.i.a.exp + self.i.b.exp
        m.d.sync += [product.eq(self.i.a.mant * self.i.b.mant), valid.eq(self.i.valid)]
        for offset, exp, outside in zip((15, 16, 17), exps, out_of_range):
            m.d.sync += [exp.eq(exp_sum + offset),
                         outside.eq((exp_sum + offset < -limit) | (exp_sum + offset >= limit))]
        top = product[2 * SCALE_BITS - 1]
        rounded = Signal(SCALE_BITS + 1)
        m.d.comb += rounded.eq(Mux(top, (product + (1 << (SCALE_BITS - 1))) >> SCALE_BITS,
                                   (product + (1 << (SCALE_BITS - 2))) >> (SCALE_BITS - 1)))
        carry = rounded[SCALE_BITS]
        def chosen(by_offset):          # 15 + top + carry
            return Mux(top, Mux(carry, by_offset[2], by_offset[1]), Mux(carry, by_offset[1], by_offset[0]))
        exp, outside = chosen(exps), chosen(out_of_range)
        zero = product == 0
        bad = ~zero & ((~top & ~product[2 * SCALE_BITS - 2]) | outside)
        m.d.sync += [self.o.mant.eq(Mux(zero | bad, 0, Mux(carry, rounded >> 1, rounded))),
                     self.o.exp.eq(Mux(zero | bad, 0, exp)), self.o.invalid.eq(bad),
                     self.o.valid.eq(valid)]
        return m
