"""The shared vector unit's instruction set, and a machine that runs it exactly (issue 18).

The per-step blocks of today's engine (RmsQuantizer, HeadQuantizer, Dequantizer, Rope,
GatedActivation, AttentionHead's softmax) each carry their own datapath. The shared vector unit
replaces them with one datapath of ``lanes`` identical lanes over one scratchpad, driven by a
straight-line program of two kinds of instruction:

* :class:`VectorOp` — one pass over ``n`` elements of the scratchpad, ``lanes`` elements a cycle.
  Every element goes through the same pipeline, the shape of a DSP slice::

      a  = scratchpad[a + i]                                   (ELEMENT_BITS, signed)
      a' = pre(a)                 NONE | RELU max(a, 0) | RSUB r - a, saturated to A_BITS
      a' = truncate_magnitude(a', a_shift), a_shift >= 0         (must fit A_BITS, signed)
      b  = scratchpad[b + i] | register b | a' | sigmoid_table(a')   (must fit B_BITS, signed)
      p  = a'·b | exp2_neg(a') | a (ADD: the element itself, no product) | a'·(b·127) (CODE)
      p  = c ± p                  c = scratchpad[c + i] or 0           (must fit P_BITS)
      y  = round(p, shift)        HALF_UP rshift_round | TRUNCATE truncate_magnitude | MAGNITUDE
      y  = saturate(y, bits)      (else y must fit ELEMENT_BITS)
      scratchpad[dst + i] = y;    one reduction over y: MAXABS, MAX, SUM or ARGMAX

  CODE forms int8 codes the way ``model.numerics.absmax_quantize`` does (the magnitude times the
  reciprocal times 127, rounded half up, the sign put back: ``Round.MAGNITUDE``); its operands
  swap ports, ``b·127`` on the a port and a' on the b port, so a' must fit B_BITS.
* :class:`ScalarOp` — one operation on named registers: the scale arithmetic of
  :class:`~hw.scale_unit.ScaleUnit` (MUL, ADD, FROM_INT, RECIP, RSQRT), the normalizer's and the
  quantizer's shift and reciprocal, and small integer steps. ``STORE`` writes a register into the
  scratchpad, ``LOAD`` reads one element into a register.
* :class:`Call` — the caller's turn: the array's product of a matrix into the scratchpad, or a
  look at values (a trace); the program waits for it.

Shift amounts and the ``b`` operand may name registers, so one program serves every token: the
data-dependent values (a vector's peak, its normalizing shift, the codes' reciprocal) flow from a
pass's reductions through scalar operations into the next pass. No instruction branches.

:class:`VectorMachine` runs a program on Python integers and checks every width above, so a
program that passes on a model's tokens fits the datapath the widths describe. The programs for
each step of the contract are in :mod:`hw.vector_programs`; the gateware that implements this
instruction set is checked against this machine.
"""

import dataclasses
import enum

import numpy as np
from amaranth.lib import enum as hdl_enum

from model import numerics as nx

ELEMENT_BITS = 36      # a scratchpad element, signed (DP16KD's 36-bit port)
A_BITS = 36            # the multiplier's a port, signed: a whole element (ECP5: two MULT18X18D)
B_BITS = 18            # the multiplier's b port, signed (MULT18X18D's)
P_BITS = 54            # the product and the post-adder, signed (ECP5's ALU54)
SUM_BITS = 48          # the SUM reduction's accumulator, signed
SHR_LIMIT = 62         # SHR's shift is clamped to [0, SHR_LIMIT]
SHIFT_CLAMP = 2 * P_BITS   # a pass's shifts beyond this give what this gives (0 right; left, no fit)
REGISTER_BITS = SUM_BITS   # an integer register, signed (a scale register: a 16-bit mantissa and an
#                            exponent of nx.SCALE_EXP_BITS)


class Pre(hdl_enum.Enum, shape=2):
    NONE = 0
    RELU = 1           # max(a, 0)
    RSUB = 2           # register - a, saturated to the a port: exp2_neg's distance from the peak


class BSource(hdl_enum.Enum, shape=3):
    NONE = 0           # no product (EXP2, ADD)
    VECTOR = 1         # scratchpad[b + i]
    REGISTER = 2       # register b (a scale register: its mantissa), the same for every element
    SELF = 3           # a' (a square)
    SIGMOID = 4        # model.numerics.SIGMOID_TABLE at SiLU's index of a'


class Function(hdl_enum.Enum, shape=2):
    MUL = 0            # a' · b
    ADD = 1            # a itself (the raw element, before pre and a_shift), plus c
    EXP2 = 2           # exp2_neg(a'): the softmax's table, a' >= 0
    CODE = 3           # |a'| · b · 127, rounded as a magnitude, then the sign of a'


class Round(hdl_enum.Enum, shape=2):
    HALF_UP = 0        # model.numerics.rshift_round (a negative shift is a left shift)
    TRUNCATE = 1       # model.numerics.truncate_magnitude
    MAGNITUDE = 2      # sign(p) · rshift_round(|p|, shift): CODE's rounding


class Reduce(enum.Enum):
    MAXABS = 0         # max |y| (0 for an empty pass)
    MAX = 1            # max y
    SUM = 2            # Σ y in SUM_BITS
    ARGMAX = 3         # the first index of max y


class Part(hdl_enum.Enum, shape=2):
    ALL = 0            # an integer register's value
    POSITIVE = 1       # max(register, 0)
    NEGATIVE = 2       # min(register, 0)
    EXPONENT = 3       # a scale register's exponent


@dataclasses.dataclass(frozen=True)
class Amount:
    """A shift amount: ``offset + sign · part(register)`` (``register`` None: the offset alone),
    ``part`` an integer register's value or its positive or negative part, or a scale register's
    exponent."""
    register: str | None = None
    sign: int = 1
    offset: int = 0
    part: Part = Part.ALL

    def __post_init__(self):
        if self.sign not in (-2, -1, 1, 2):
            raise ValueError(f"an amount's sign is -2, -1, 1 or 2 (a register times it), not {self.sign}")

    def value(self, registers: dict) -> int:
        if not self.register:
            return self.offset
        value = registers[self.register]
        if isinstance(value, tuple) != (self.part is Part.EXPONENT):
            raise ProgramError(f"an amount of part {self.part.name} of register {self.register!r}, which "
                               f"holds {'a scale' if isinstance(value, tuple) else 'an integer'}")
        value = int(value[1] if self.part is Part.EXPONENT else value)
        if self.part is Part.POSITIVE:
            value = max(value, 0)
        elif self.part is Part.NEGATIVE:
            value = min(value, 0)
        return self.offset + self.sign * value


ZERO = Amount()


@dataclasses.dataclass(frozen=True)
class VectorOp:
    """One pass over ``n`` elements (the module docstring gives the pipeline)."""
    n: int
    a: int
    dst: int | None = None
    function: Function = Function.MUL
    b_source: BSource = BSource.NONE
    b: int | str | None = None          # VECTOR: an address; REGISTER: a register name
    b_period: int | None = None         # VECTOR: b's elements repeat every b_period (b[i mod b_period])
    c: int | None = None
    negate: bool = False                # p = c - product
    pre: Pre = Pre.NONE
    pre_register: str | None = None     # RSUB's minuend
    a_shift: Amount = ZERO
    shift: Amount = ZERO
    round: Round = Round.HALF_UP
    saturate: int | None = None
    reduce: tuple = ()                  # ((Reduce, register name),): at most one reduction a pass
    follows: bool = False               # a is all of the landing detached call's results, read as
    #                                     they land; the pass ends the call as a next call would (with
    #                                     no call landing, an ordinary pass)
    note: str = ""                      # what the pass computes, for traces and errors

    def __post_init__(self):
        if self.n < 0:
            raise ValueError(f"a vector pass needs n >= 0 elements, not {self.n}")
        wants_b = self.function in (Function.MUL, Function.CODE)
        if wants_b != (self.b_source is not BSource.NONE):
            raise ValueError(f"{self.function.name} {'needs' if wants_b else 'takes no'} b operand "
                             f"({self.note or 'vector op'})")
        if len(self.reduce) > 1:
            raise ValueError(f"a pass makes at most one reduction, not {len(self.reduce)} "
                             f"({self.note or 'vector op'})")
        if self.b_period is not None and (self.b_source is not BSource.VECTOR or self.b_period < 1):
            raise ValueError(f"b_period repeats a VECTOR b of 1 element or more, not {self.b_period} with "
                             f"{self.b_source.name} b ({self.note or 'vector op'})")
        if self.pre is Pre.RSUB and self.pre_register is None:
            raise ValueError("Pre.RSUB needs pre_register, the register a is subtracted from")

    @property
    def registers(self) -> tuple:
        """The registers the pass reads (its shift amounts, RSUB's minuend, REGISTER's b)."""
        names = (self.a_shift.register, self.shift.register, self.pre_register,
                 self.b if self.b_source is BSource.REGISTER else None)
        return tuple(name for name in names if name)


class ScalarKind(hdl_enum.Enum, shape=5):
    MUL = 0            # scale_mul(a, b) of normalized scales (mantissa >= 2^15) or 0
    ADD = 1            # scale_add(a, b)
    FROM_INT = 2       # scale_from_int(a, exp), exp = Amount
    RECIP = 3          # scale_recip(a)
    RSQRT = 4          # scale_rsqrt(a)
    NORM_SHIFT = 5     # max(0, bitlen(a) - NORM_MAX_BITLEN): model.numerics.normalize's shift
    CODE_SHIFT = 6     # bitlen(a) - NORM_MAX_BITLEN for a > 0, else 0: absmax_quantize's shift
    CODE_RECIP = 7     # ceil(2^33 / m_n), m_n = truncate_magnitude(a, shift b) in [2^16, 2^17), for a > 0
    #                    (b is CODE_SHIFT of a); 0 for a = 0
    MANT = 8           # the mantissa of scale a
    EXP = 9            # the exponent of scale a
    INT = 10           # the integer exp (an Amount): constants and shift arithmetic
    SCALE = 11         # the scale (a, exp): a register holding a mantissa, exp an Amount
    STORE = 12         # scratchpad[address] = integer register a
    LOAD = 13          # register = scratchpad[address]
    MAX = 14           # max(a, b) of two integers
    IS_ZERO = 15       # 1 if integer a is 0, else 0
    SELECT = 16        # b if integer register exp.register is nonzero, else a (any values)
    ADD_INT = 17       # integer a + exp (an Amount)
    MUL_INT = 18       # integer a · b (a fits A_BITS, b B_BITS: the lane's multiplier ports)
    SHR = 19           # integer a >> b, b clamped to [0, 62] (floor)


@dataclasses.dataclass(frozen=True)
class ScalarOp:
    """``result = kind(a, b, exp)`` on registers (integers or (mant, exp) scales)."""
    kind: ScalarKind
    result: str | None = None
    a: str | None = None
    b: str | None = None
    exp: Amount = ZERO
    address: int | None = None          # STORE / LOAD

    @property
    def registers(self) -> tuple:
        """The registers the operation reads."""
        return tuple(name for name in (self.a, self.b, self.exp.register) if name)


@dataclasses.dataclass(frozen=True)
class Call:
    """The program hands the scratchpad and the registers to its caller and waits: for the
    array's product of a matrix, for the attention unit, or for a look at the values (a trace).
    ``memory`` lists the regions ``(address, n)`` and ``reads`` the registers the caller is given;
    the caller answers with the elements it writes and the registers it sets, of ``writes``
    (``VectorMachine.run``'s ``serve``).

    A detached call (``detach``) hands the program back once the caller has started; its elements
    land while the program goes on, so no instruction may touch them before the program's next call
    (which waits for the caller) or a pass that ``follows`` the call (its a is all of the call's
    results, each row read once it has landed), nor write into the regions it reads (the caller
    may read them until then), and it sets no registers."""
    kind: str
    args: tuple = ()
    memory: tuple = ()
    reads: tuple = ()
    writes: tuple = ()
    detach: bool = False

    @property
    def registers(self) -> tuple:
        return self.reads


class ProgramError(ValueError):
    """A program asked for a value the datapath's widths cannot hold (or a register it never set)."""


def _signed(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), 1 << (bits - 1)


# rshift_round and truncate_magnitude on Python integers: exact for any shift, where numerics'
# int64 forms clip shifts at 62 and overflow on large left shifts.
def _rshift_round(x: int, n: int) -> int:
    return (x + (1 << (n - 1))) >> n if n > 0 else x << -n


def _truncate(x: int, n: int) -> int:
    if n < 0:
        return x << -n
    return -((-x) >> n) if x < 0 else x >> n


def _saturate(x: int, bits: int) -> int:
    low, high = _signed(bits)
    return min(max(x, low), high - 1)


@dataclasses.dataclass(frozen=True)
class PassConfig:
    """A pass's register operands, resolved: what the unit holds in its lanes for the whole pass."""
    a_shift: int = 0
    shift: int = 0
    b: int = 0              # REGISTER's b (a scale register's: its mantissa); CODE's reciprocal
    #                         (b·127 goes on the a port)
    pre: int = 0            # RSUB's minuend

    @classmethod
    def of(cls, op: VectorOp, registers: dict) -> "PassConfig":
        b = registers[op.b] if op.b_source is BSource.REGISTER else 0
        return cls(op.a_shift.value(registers), op.shift.value(registers),
                   int(b[0] if isinstance(b, tuple) else b),
                   int(registers[op.pre_register]) if op.pre is Pre.RSUB else 0)


def element(op: VectorOp, config: PassConfig, a: int, b: int, c: int) -> tuple[int, str | None]:
    """One element through a lane: ``(y, None)``, or ``(0, why)`` where a value does not fit its
    port (a' the a port, b the b port, p the post-adder, an unsaturated y an element)."""
    a_low, a_high = _signed(A_BITS)
    b_low, b_high = _signed(B_BITS)
    if op.function is Function.CODE and not a_low <= config.b * nx.ACT_MAX < a_high:
        return 0, f"CODE's b·127 {config.b * nx.ACT_MAX} outside the a port's {A_BITS} bits"
    if op.pre is Pre.RSUB and not _fits(config.pre, ELEMENT_BITS):
        return 0, f"RSUB's register {config.pre} outside an element's {ELEMENT_BITS} bits"
    raw = a
    if op.pre is Pre.RELU:
        a = max(a, 0)
    elif op.pre is Pre.RSUB:
        a = min(max(config.pre - a, a_low), a_high - 1)
    if config.a_shift < 0:
        return 0, f"a_shift {config.a_shift} < 0 (a' shifts right only)"
    a = _truncate(a, min(config.a_shift, SHIFT_CLAMP))
    if op.function is not Function.ADD and not a_low <= a < a_high:
        return 0, f"a' {a} outside the a port's {A_BITS} bits"
    if op.b_source is BSource.REGISTER:
        b = config.b
    elif op.b_source is BSource.SELF:
        b = a
    elif op.b_source is BSource.SIGMOID:
        b = int(nx.sigmoid_q16(a))
    if op.function is Function.CODE:
        a, b = config.b * nx.ACT_MAX, a
    if op.b_source is not BSource.NONE and not b_low <= b < b_high:
        return 0, f"b {b} outside the b port's {B_BITS} bits"
    if op.function in (Function.MUL, Function.CODE):
        p = a * b
    elif op.function is Function.EXP2:
        if a < 0:
            return 0, f"EXP2 of a negative a' {a}"
        p = int(nx.exp2_neg(a))
    else:
        p = raw
    p = c - p if op.negate else c + p
    if not -(1 << (P_BITS - 1)) <= p < 1 << (P_BITS - 1):
        return 0, f"p {p} outside the post-adder's {P_BITS} bits"
    shift = max(min(config.shift, SHIFT_CLAMP), -SHIFT_CLAMP)
    if op.round is Round.HALF_UP:
        y = _rshift_round(p, shift)
    elif op.round is Round.TRUNCATE:
        y = _truncate(p, shift)
    else:
        y = -_rshift_round(-p, shift) if p < 0 else _rshift_round(p, shift)
    if op.saturate:
        y = _saturate(y, op.saturate)
    if not -(1 << (ELEMENT_BITS - 1)) <= y < 1 << (ELEMENT_BITS - 1):
        return 0, f"y {y} does not fit an element's {ELEMENT_BITS} bits"
    return y, None


class VectorMachine:
    """Runs :class:`VectorOp` / :class:`ScalarOp` programs on a scratchpad of ``size`` elements.

    ``passes`` and ``elements`` count the vector passes and the elements they moved; with
    ``lanes`` lanes a pass of n elements issues in ceil(n / lanes) cycles.
    """

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"a scratchpad needs at least one element, not {size}")
        self.memory = [0] * size
        self.registers: dict = {}
        self.passes = self.elements = self.scalar_ops = self.calls = 0
        self._landing = []      # (range, call kind): elements a detached call writes, until the next call
        self._reading = []      # (range, call kind): elements it reads, until then

    def write(self, address: int, values) -> None:
        values = [int(v) for v in np.asarray(values).ravel()]
        self._span(address, len(values), "write")
        low, high = _signed(ELEMENT_BITS)
        bad = [v for v in values if not low <= v < high]
        if bad:
            raise ProgramError(f"element {bad[0]} does not fit {ELEMENT_BITS} bits at {address}")
        self.memory[address:address + len(values)] = values

    def read(self, address: int, n: int) -> np.ndarray:
        self._span(address, n, "read")
        return np.array(self.memory[address:address + n], dtype=np.int64)

    def _span(self, address: int, n: int, what: str) -> None:
        if address < 0 or address + n > len(self.memory):
            raise ProgramError(f"{what} of {n} elements at {address} outside the scratchpad's "
                               f"{len(self.memory)}")

    def _register(self, name: str):
        if name not in self.registers:
            raise ProgramError(f"register {name!r} read before it was set")
        return self.registers[name]

    def run(self, program, serve=None) -> None:
        """Each instruction in order; a :class:`Call` is answered by ``serve(call, regions,
        registers)`` (the regions' elements as arrays, the registers by name), which returns the
        ``(address, values)`` to write and the ``(register, value)`` to set (of the call's
        ``writes``)."""
        for op in program:
            if isinstance(op, VectorOp):
                self._touch(op)
                if op.follows:
                    self._landing = self._reading = []      # the call is over once the pass has read it
                self._vector(op)
            elif isinstance(op, Call):
                if serve is None:
                    raise ProgramError(f"a {op.kind} call with no caller to serve it")
                self._landing = []
                self._reading = [(range(address, address + n), op.kind) for address, n in op.memory
                                 if op.detach]
                regions = [self.read(address, n) for address, n in op.memory]
                for target, values in serve(op, regions, {name: self._register(name) for name in op.reads}):
                    if isinstance(target, str):
                        if target not in op.writes or op.detach:
                            raise ProgramError(f"a {op.kind} call sets {target!r}, not one of its writes"
                                               + (" (a detached call sets none)" if op.detach else ""))
                        self.registers[target] = values
                    else:
                        self.write(target, values)
                        if op.detach:
                            self._landing.append((range(target, target + len(np.asarray(values).ravel())),
                                                  op.kind))
                self.calls += 1
            else:
                self._touch(op)
                self._scalar(op)
        if self._landing:
            raise ProgramError(f"the program ends while a detached {self._landing[0][1]} call's results land "
                               "(end it with a call)")

    def _touch(self, op) -> None:
        """Refuse an instruction that reads or writes elements a detached call is still writing,
        or writes elements it may still read."""
        if isinstance(op, VectorOp) and op.follows and self._landing:
            landing = [region for region, _ in self._landing]
            if landing != [range(op.a, op.a + op.n)]:
                raise ProgramError(f"{op.note or op} follows a detached call, so its a is all of that "
                                   f"call's results as they land (elements {landing[0].start}–"
                                   f"{landing[-1].stop - 1})")
        if not self._landing and not self._reading:
            return
        if isinstance(op, VectorOp):
            writes = [(op.dst, op.n)]
            spans = [*writes, (None if op.follows else op.a, op.n), (op.c, op.n),
                     (op.b, op.b_period or op.n) if op.b_source is BSource.VECTOR else (None, 0)]
        else:
            spans = [(op.address, 1)] if op.kind in (ScalarKind.LOAD, ScalarKind.STORE) else []
            writes = spans if op.kind is ScalarKind.STORE else []
        for regions, touches, does in ((self._landing, spans, "writes"), (self._reading, writes, "reads")):
            for address, n in touches:
                for region, kind in regions:
                    if address is not None and n and address < region.stop and region.start < address + n:
                        raise ProgramError(f"{getattr(op, 'note', '') or op} "
                                           f"{'touches' if does == 'writes' else 'writes'} elements "
                                           f"{region.start}–{region.stop - 1}, which a detached {kind} call "
                                           f"{does} until the program's next call")

    # -- the vector pass ------------------------------------------------------------------------

    def _vector(self, op: VectorOp) -> None:
        pass_ = PassConfig.of(op, {name: self._register(name) for name in op.registers})
        raw = self.read(op.a, op.n).tolist()
        b_vector = [0] * op.n
        if op.b_source is BSource.VECTOR:
            period = op.b_period or op.n
            b_vector = (self.read(op.b, period).tolist() * -(-op.n // period))[:op.n] if op.n else []
        c_vector = self.read(op.c, op.n).tolist() if op.c is not None else [0] * op.n
        out = []
        for a, b, c in zip(raw, b_vector, c_vector):
            y, error = element(op, pass_, a, b, c)
            if error:
                raise ProgramError(f"{error} in {op.note or op}")
            out.append(y)
        if op.dst is not None:
            self.write(op.dst, out)
        for kind, name in op.reduce:
            self.registers[name] = self._reduction(kind, out, op)
        self.passes += 1
        self.elements += op.n

    @staticmethod
    def _reduction(kind: Reduce, values: list, op) -> int:
        if kind is Reduce.MAXABS:
            return max((abs(v) for v in values), default=0)
        if not values:
            raise ProgramError(f"{kind.name} of an empty pass in {op.note or op}")
        if kind is Reduce.MAX:
            return max(values)
        if kind is Reduce.ARGMAX:
            return values.index(max(values))
        total = sum(values)
        low, high = _signed(SUM_BITS)
        if not low <= total < high:
            raise ProgramError(f"sum {total} outside the reduction's {SUM_BITS} bits in {op.note or op}")
        return total

    # -- the scalar operation -------------------------------------------------------------------

    def _scalar(self, op: ScalarOp) -> None:
        reg = self._register
        kind = op.kind
        regs = {op.exp.register: reg(op.exp.register)} if op.exp.register else {}
        exp = op.exp.value(regs) if kind is not ScalarKind.SELECT else 0
        if kind is ScalarKind.STORE:
            self.write(op.address, [reg(op.a)])
        elif kind is ScalarKind.LOAD:
            self.registers[op.result] = int(self.read(op.address, 1)[0])
        elif kind is ScalarKind.SELECT:
            self.registers[op.result] = reg(op.b) if reg(op.exp.register) else reg(op.a)
        else:
            value = self._scalar_value(kind, op, exp)
            if isinstance(value, tuple):
                _check_scale(value, op)
            elif not _fits(value, REGISTER_BITS):
                raise ProgramError(f"{kind.name} result {value} does not fit a register's "
                                   f"{REGISTER_BITS} bits")
            self.registers[op.result] = value
        self.scalar_ops += 1

    def _scalar_value(self, kind: ScalarKind, op: ScalarOp, exp: int):
        reg = self._register

        def scale(pair):
            return int(pair[0]), int(pair[1])

        def operand(name):
            value = reg(name)
            _check_scale(value, op)
            return value
        if kind is ScalarKind.MUL:
            (ma, _), (mb, _) = operand(op.a), operand(op.b)
            if 0 < ma * mb < 1 << (2 * nx.SCALE_BITS - 2):
                raise ProgramError(f"MUL of a scale not normalized (mantissas {ma} and {mb}; a nonzero one is "
                                   f"at least 2^{nx.SCALE_BITS - 1}) ({op})")
            return scale(nx.scale_mul(reg(op.a), reg(op.b)))
        if kind is ScalarKind.ADD:
            return scale(nx.scale_add(operand(op.a), operand(op.b)))
        if kind is ScalarKind.RECIP:
            if operand(op.a)[0] == 0:
                raise ProgramError(f"RECIP of the scale 0 ({op})")
            return scale(nx.scale_recip(reg(op.a)))
        if kind is ScalarKind.RSQRT:
            if operand(op.a)[0] == 0:
                raise ProgramError(f"RSQRT of the scale 0 ({op})")
            return scale(nx.scale_rsqrt(reg(op.a)))
        if kind is ScalarKind.MANT:
            return int(operand(op.a)[0])
        if kind is ScalarKind.EXP:
            return int(operand(op.a)[1])
        if kind is ScalarKind.INT:
            return exp
        value = int(reg(op.a))
        if kind is ScalarKind.FROM_INT:
            if value < 0:
                raise ProgramError(f"FROM_INT of a negative integer {value} ({op})")
            return scale(nx.scale_from_int(value, exp))
        if kind is ScalarKind.SCALE:
            return value, exp
        if kind is ScalarKind.MAX:
            return max(value, int(reg(op.b)))
        if kind is ScalarKind.IS_ZERO:
            return int(value == 0)
        if kind is ScalarKind.ADD_INT:
            return value + exp
        if kind is ScalarKind.MUL_INT:
            b = int(reg(op.b))
            if not (_fits(value, A_BITS) and _fits(b, B_BITS)):
                raise ProgramError(f"MUL_INT takes a of {A_BITS} bits and b of {B_BITS}, not {value} and {b}")
            return value * b
        if kind is ScalarKind.SHR:
            return value >> min(max(int(reg(op.b)), 0), SHR_LIMIT)
        if kind is ScalarKind.NORM_SHIFT:
            return max(0, abs(value).bit_length() - nx.NORM_MAX_BITLEN)
        if kind is ScalarKind.CODE_SHIFT:
            return abs(value).bit_length() - nx.NORM_MAX_BITLEN if value else 0
        # CODE_RECIP
        if value == 0:
            return 0
        normalized = _truncate(value, int(reg(op.b)))
        if value < 0 or normalized.bit_length() != nx.NORM_MAX_BITLEN:
            raise ProgramError(f"CODE_RECIP of {value} shifted by {int(reg(op.b))} is {normalized}, not "
                               f"in [2^{nx.NORM_MAX_BITLEN - 1}, 2^{nx.NORM_MAX_BITLEN}) "
                               "(shift by its CODE_SHIFT)")
        return nx.codes_reciprocal(normalized)


def _fits(value: int, bits: int) -> bool:
    low, high = _signed(bits)
    return low <= value < high


def _check_scale(value, op) -> None:
    """A scale register's (mant, exp): a 16-bit mantissa, an exponent of SCALE_EXP_BITS."""
    if not isinstance(value, tuple):
        raise ProgramError(f"{op.kind.name} reads an integer register as a scale ({op})")
    mant, exp = value
    if not (0 <= mant < 1 << nx.SCALE_BITS and _fits(exp, nx.SCALE_EXP_BITS)):
        raise ProgramError(f"scale ({mant}, {exp}) outside a {nx.SCALE_BITS}-bit mantissa and a "
                           f"{nx.SCALE_EXP_BITS}-bit exponent ({op})")
