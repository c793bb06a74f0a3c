"""One lane of the shared vector unit: :func:`hw.vector_isa.element` as a pipeline, an element a
cycle, and the :class:`PassDecoder` that turns a pass's operation into what its lanes share.

The unit holds a pass's operation and its resolved registers (:class:`~hw.vector_isa.PassConfig`)
for the whole pass; :class:`PassDecoder` turns them, once for all lanes, into the constants a lane
would otherwise form itself (the truncation's mask, the rounding constants for a negative and a
non-negative value, the masks that tell whether a shifted value still fits). ADD (the element
itself plus c) reaches the lanes as a MUL by a register b of 1 with no pre and no a_shift: the
same p, so a lane has no path for the raw element beside its product. A lane computes, per
element, exactly what ``element`` does, and flags ``error`` where ``element`` names a value that
does not fit its port (the result is then 0).

Stages (each ends in registers):

1. the element, b and c in;
2. ``pre``: RELU, or RSUB's ``register − a`` saturated to the a port;
3. ``a_shift`` (right only): the floor shift, and whether bits below the point were lost (the
   truncation's correction for a negative value);
4. the correction added: a';
5. the multiplier's operands: a' or CODE's ``b·127``; the b element, the register, a' (SELF,
   CODE), or the sigmoid table at SiLU's index of a'; EXP2's table entry;
6. two 18×18 partial products, ``a[0:18]·b`` and ``a[18:36]·b`` (the DSPs' output registers);
7. ``p``: the partial products' sum, or EXP2's entry shifted by the whole part;
8. ``c ± p`` (one adder: ``c + (p ^ −negate) + negate``);
9. the rounding constant for the value's sign added (right shifts);
10. the shift to a 37-bit window, right or left (one funnel shift: the rounded sum, WINDOW − 1
    bits up, shifted right), and whether the value left the window;
11. saturation to the op's width, or the check that the result fits an element.

**Latency** :attr:`VectorLane.LATENCY` cycles from an element in (``i.valid``) to its result out
(``o.valid``); a lane has no backpressure: the unit writes every result as it comes. ``exp2`` and
``sigmoid`` add the tables only where a lane needs them (EXP2 and SIGMOID give 0 and flag an
error in a lane without).
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model import numerics as nx

from .vector_isa import A_BITS, B_BITS, ELEMENT_BITS, P_BITS, BSource, Function, Pre, Round

SHIFT_BITS = 8              # a pass's shift offsets: SHIFT_BITS + 2 bits, signed
AMOUNT_BITS = SHIFT_BITS + 7    # a resolved shift amount, signed: an offset plus twice a register's
#                                 part saturated to SHIFT_BITS + 4 bits (beyond them all clamp alike)
PART_BITS = 18              # the a port is split into two 18-bit halves, one partial product each
SUM_BITS = P_BITS + 1       # c ± p
RIGHT_LIMIT = SUM_BITS      # a right shift this far leaves any rounded sum at 0 (larger ones clamp)
ROUNDED_BITS = SUM_BITS + 2  # c ± p plus a rounding constant below 2^RIGHT_LIMIT
WINDOW = ELEMENT_BITS + 1   # the shifted value's bits kept: an element and one more for saturation
FUNNEL_LIMIT = WINDOW - 1 + RIGHT_LIMIT     # the rounded sum WINDOW − 1 bits up is shifted right this far


class Saturate(enum.Enum, shape=2):
    NONE = 0
    RES = 1         # nx.RES_BITS (the residual)
    ELEMENT = 2     # ELEMENT_BITS


CONFIG = data.StructLayout({
    "function": Function, "b_source": BSource, "pre": Pre, "round": Round,
    "negate": 1, "saturate": Saturate,
    "a_shift": signed(AMOUNT_BITS), "shift": signed(AMOUNT_BITS),
    "b": signed(B_BITS),                 # REGISTER's b
    "code": signed(A_BITS),              # CODE's b·127 (the unit forms it)
    "pre_register": signed(ELEMENT_BITS),
})


def saturate_of(bits: int | None) -> Saturate:
    """The lane's Saturate for an op's ``saturate`` field."""
    try:
        return {None: Saturate.NONE, nx.RES_BITS: Saturate.RES, ELEMENT_BITS: Saturate.ELEMENT}[bits]
    except KeyError:
        raise ValueError(f"a lane saturates to {nx.RES_BITS} or {ELEMENT_BITS} bits, not {bits}") from None


LANE_CONFIG = data.StructLayout({
    "function": Function, "b_source": BSource, "pre": Pre, "negate": 1, "saturate": Saturate,
    "b": signed(B_BITS), "code": signed(A_BITS), "pre_register": signed(ELEMENT_BITS),
    "a_right": range(A_BITS + 1),         # a_shift clamped to [0, A_BITS]
    "a_mask": A_BITS,                     # the bits a_right shifts out
    "a_error": 1,                         # a_shift < 0: a program error
    "funnel": range(FUNNEL_LIMIT + 1),    # the window's shift: WINDOW − 1 + shift, clamped
    "round_positive": unsigned(ROUNDED_BITS),   # the rounding constants for c ± p >= 0 and < 0
    "round_negative": unsigned(ROUNDED_BITS),
    "over": ROUNDED_BITS,                 # the rounded sum's bits that must be sign bits to fit WINDOW
})


class PassDecoder(wiring.Component):
    """A pass's operation (:data:`CONFIG`) into its lanes' shared constants (:data:`LANE_CONFIG`),
    once for all lanes, in :attr:`LATENCY` registered stages: the shift amounts clamped, then
    the masks and rounding constants they select."""

    LATENCY = 2

    def __init__(self):
        super().__init__({"config": In(CONFIG), "lane": Out(LANE_CONFIG)})

    def elaborate(self, platform):
        m = Module()
        cfg, lane = self.config, self.lane
        # 1: the operation's fields, and the shift amounts clamped
        fields = Signal(CONFIG)
        m.d.sync += fields.eq(cfg)
        a_right = Signal(range(A_BITS + 1))
        s_right = Signal(range(RIGHT_LIMIT + 1))
        s_left = Signal(range(WINDOW))
        s = cfg.shift
        m.d.sync += [a_right.eq(Mux(cfg.a_shift[-1], 0, Mux(cfg.a_shift > A_BITS, A_BITS, cfg.a_shift))),
                     s_right.eq(Mux(s[-1], 0, Mux(s > RIGHT_LIMIT, RIGHT_LIMIT, s))),
                     s_left.eq(Mux(s[-1], Mux(-s >= WINDOW, WINDOW - 1, -s), 0))]
        # 2: what the lanes share; ADD as a MUL by 1 of the element as it is
        add = fields.function == Function.ADD
        for name in ("negate", "saturate", "code", "pre_register"):
            m.d.sync += getattr(lane, name).eq(getattr(fields, name))
        m.d.sync += [lane.function.eq(Mux(add, Function.MUL, fields.function)),
                     lane.b_source.eq(Mux(add, BSource.REGISTER, fields.b_source)),
                     lane.b.eq(Mux(add, 1, fields.b)), lane.pre.eq(Mux(add, Pre.NONE, fields.pre))]
        half = Signal(unsigned(ROUNDED_BITS))          # 2^(s - 1) for s >= 1
        half_at = Signal(range(RIGHT_LIMIT))
        m.d.comb += [half_at.eq(s_right - 1),
                     half.eq(Mux(s_right == 0, 0, Const(1, unsigned(ROUNDED_BITS)) << half_at))]
        with m.Switch(fields.round):
            for mode, (up, down) in {Round.HALF_UP: (half, half),
                                     Round.MAGNITUDE: (half, Mux(s_right == 0, 0, half - 1)),
                                     Round.TRUNCATE: (0, Mux(s_right == 0, 0, (half << 1) - 1))}.items():
                with m.Case(mode):
                    m.d.sync += [lane.round_positive.eq(up), lane.round_negative.eq(down)]
        # a left shift's rounding constants are 0 (s_right is), so its rounded sum is c ± p
        top = Const(-1, signed(ROUNDED_BITS + WINDOW + 1))
        m.d.sync += [lane.a_right.eq(Mux(add, 0, a_right)),
                     lane.a_mask.eq(Mux(add, 0, ~(Const(-1, signed(A_BITS)) << a_right))),
                     lane.a_error.eq(fields.a_shift[-1]),
                     lane.funnel.eq(WINDOW - 1 + s_right - s_left),
                     lane.over.eq(Mux(fields.shift[-1],
                                      (top << (WINDOW - 1))[:ROUNDED_BITS + WINDOW] >> s_left,
                                      (top << (s_right + (WINDOW - 1)))[:ROUNDED_BITS]))]
        return m


def _clamped(amount: int) -> int:
    """A shift amount in AMOUNT_BITS: any right shift from RIGHT_LIMIT on, and any left shift from
    WINDOW on, give the same result, so clamping keeps the pass's meaning."""
    return min(max(amount, -(1 << (AMOUNT_BITS - 1))), (1 << (AMOUNT_BITS - 1)) - 1)


def config_of(op, config) -> dict:
    """A :data:`CONFIG` value for ``op`` (a :class:`~hw.vector_isa.VectorOp`) with its registers
    resolved (``config``, a :class:`~hw.vector_isa.PassConfig`): what a sequencer drives."""
    code = op.function is Function.CODE
    return {"function": op.function, "b_source": op.b_source, "pre": op.pre, "round": op.round,
            "negate": int(op.negate), "saturate": saturate_of(op.saturate),
            "a_shift": _clamped(config.a_shift), "shift": _clamped(config.shift),
            "b": 0 if code else config.b, "code": config.b * nx.ACT_MAX if code else 0,
            "pre_register": config.pre}


def fits(value, bits: int):
    """``value`` (signed) fits ``bits`` signed bits: its bits from bits − 1 up are all equal."""
    top = value[bits - 1:]
    return (top == 0) | (top == (1 << len(top)) - 1)


class VectorLane(wiring.Component):
    """:func:`hw.vector_isa.element` for one element a cycle; :attr:`LATENCY` cycles in to out.
    ``config`` comes from a :class:`PassDecoder`, held for the pass.

    Parameters
    ----------
    exp2 : bool
        Has EXP2's table (``model.numerics.EXP2_TABLE``).
    sigmoid : bool
        Has SIGMOID's table (``model.numerics.SIGMOID_TABLE``).
    """

    LATENCY = 11

    def __init__(self, *, exp2: bool = True, sigmoid: bool = True):
        self._exp2, self._sigmoid = exp2, sigmoid
        super().__init__({
            "config": In(LANE_CONFIG),
            "i": In(data.StructLayout({"valid": 1, "a": signed(ELEMENT_BITS), "b": signed(B_BITS),
                                       "c": signed(ELEMENT_BITS)})),
            "o": Out(data.StructLayout({"valid": 1, "y": signed(ELEMENT_BITS), "error": 1})),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        a_max = (1 << (A_BITS - 1)) - 1

        def stage(name, value, shape=None):
            reg = Signal(shape if shape is not None else value.shape(), name=name)
            m.d.sync += reg.eq(value)
            return reg

        def carried(name, signal, stages):
            """``signal`` delayed by ``stages`` registers."""
            for k in range(stages):
                signal = stage(f"{name}_{k + 2}", signal)
            return signal

        # 1: the element in
        valid1 = stage("valid1", self.i.valid)
        a1, b1, c1 = stage("a1", self.i.a), stage("b1", self.i.b), stage("c1", self.i.c)

        # 2: pre
        difference = Signal(signed(ELEMENT_BITS + 1))
        m.d.comb += difference.eq(cfg.pre_register - a1)
        pre = Signal(signed(A_BITS))
        with m.Switch(cfg.pre):
            with m.Case(Pre.RELU):
                m.d.comb += pre.eq(Mux(a1[-1], 0, a1))
            with m.Case(Pre.RSUB):
                m.d.comb += pre.eq(Mux(fits(difference, A_BITS), difference,
                                       Mux(difference[-1], -a_max - 1, a_max)))
            with m.Default():
                m.d.comb += pre.eq(a1)
        a2 = stage("a2", pre)

        # 3: a_shift (truncate_magnitude): the floor shift and the correction's condition
        floor = stage("floor", a2 >> cfg.a_right, signed(A_BITS))
        correct = stage("correct", a2[-1] & (a2.as_unsigned() & cfg.a_mask).any())
        error3 = stage("error3", cfg.a_error)
        b3, c3 = (carried(name, value, 2) for name, value in (("b", b1), ("c", c1)))

        # 4: a'
        a4 = stage("a4", floor + correct, signed(A_BITS))
        error4 = stage("error4", error3)
        b4, c4 = stage("b4", b3), stage("c4", c3)

        # 5: the multiplier's operands; EXP2's entry
        a_port = stage("a_port", Mux(cfg.function == Function.CODE, cfg.code, a4), signed(A_BITS))
        b_select = Signal(signed(B_BITS))
        fits_b = fits(a4, B_BITS)
        b_error = Signal()
        sigmoid_entry = Signal(unsigned(nx.SIGMOID_FRAC))
        with m.Switch(cfg.b_source):
            with m.Case(BSource.VECTOR):
                m.d.comb += b_select.eq(b4)
            with m.Case(BSource.REGISTER):
                m.d.comb += b_select.eq(cfg.b)
            with m.Case(BSource.SELF):
                m.d.comb += [b_select.eq(a4), b_error.eq(~fits_b)]
            with m.Case(BSource.SIGMOID):
                m.d.comb += [b_select.eq(sigmoid_entry), b_error.eq(not self._sigmoid)]
        with m.If(cfg.function == Function.CODE):
            m.d.comb += [b_select.eq(a4), b_error.eq(~fits_b)]
        if self._sigmoid:
            table = nx.SIGMOID_TABLE.tolist()
            m.submodules.sigmoid = rom = Memory(shape=unsigned(nx.SIGMOID_FRAC), depth=len(table), init=table)
            port = rom.read_port(domain="comb")
            step = nx.SILU_FRAC - nx.SIGMOID_STEP_BITS
            index = Signal(signed(A_BITS))
            m.d.comb += [index.eq((a4 >> step) + (nx.SIGMOID_RANGE << nx.SIGMOID_STEP_BITS)),
                         port.addr.eq(Mux(index[-1], 0, Mux(index >= len(table), len(table) - 1, index))),
                         sigmoid_entry.eq(port.data)]
        b_port = stage("b_port", b_select)
        exp2_value = Signal(unsigned(nx.EXP_FRAC + 1))
        exp2_error = Signal()
        if self._exp2:
            table = nx.EXP2_TABLE.tolist()
            m.submodules.exp2 = rom = Memory(shape=unsigned(nx.EXP_FRAC + 1), depth=len(table), init=table)
            port = rom.read_port(domain="comb")
            whole = a4[nx.SCORE_FRAC:]
            m.d.comb += [port.addr.eq(a4[:nx.EXP_TABLE_BITS]),
                         exp2_value.eq(Mux(whole > nx.EXP_FRAC, 0, port.data >> whole[:4])),
                         exp2_error.eq(a4[-1])]
        else:
            m.d.comb += exp2_error.eq(1)
        exp2_5 = stage("exp2_5", exp2_value)
        error5 = stage("error5", error4 | b_error | exp2_error & (cfg.function == Function.EXP2))
        c5 = stage("c5", c4)

        # 6: two partial products (the a port in 18-bit halves, the low half unsigned)
        low = stage("product_low", a_port[:PART_BITS].as_unsigned() * b_port, signed(PART_BITS + B_BITS + 1))
        high = stage("product_high", a_port[PART_BITS:].as_signed() * b_port,
                     signed(A_BITS - PART_BITS + B_BITS))
        exp2_6, error6, c6 = (stage(f"{name}6", value) for name, value in
                              (("exp2", exp2_5), ("error", error5), ("c", c5)))

        # 7: p
        product = Signal(signed(P_BITS))
        m.d.comb += product.eq(low + (high << PART_BITS))
        p7 = stage("p7", Mux(cfg.function == Function.EXP2, exp2_6, product) if self._exp2 else product,
                   signed(P_BITS))
        error7, c7 = stage("error7", error6), stage("c7", c6)

        # 8: c ± p
        flipped = Signal(signed(P_BITS))
        m.d.comb += flipped.eq(p7 ^ -cfg.negate)
        q8 = stage("q8", c7 + flipped + cfg.negate, signed(SUM_BITS))
        error8 = stage("error8", error7)

        # 9: the rounding constant for the sign
        rounded9 = stage("rounded9", q8 + Mux(q8[-1], cfg.round_negative, cfg.round_positive),
                         signed(ROUNDED_BITS))
        error9 = stage("error9", error8)

        # 10: the shift into the window (right, or left by WINDOW − 1 − funnel), and whether the
        # value left it
        raised = Cat(Const(0, WINDOW - 1), rounded9).as_signed()
        window10 = stage("window10", (raised >> cfg.funnel)[:WINDOW], signed(WINDOW))
        out10 = stage("out10", ((rounded9 ^ -rounded9[-1]).as_unsigned() & cfg.over).any())
        negative10 = stage("negative10", rounded9[-1])
        error10 = stage("error10", error9)
        valid10 = carried("valid", valid1, 9)

        # 11: saturation, or the element check
        y = Signal(signed(ELEMENT_BITS))
        fits_error = Signal()
        for case, bits in ((Saturate.RES, nx.RES_BITS), (Saturate.ELEMENT, ELEMENT_BITS)):
            with m.If(cfg.saturate == case):
                limit = (1 << (bits - 1)) - 1
                m.d.comb += y.eq(Mux(fits(window10, bits) & ~out10, window10,
                                     Mux(negative10, -limit - 1, limit)))
        with m.If(cfg.saturate == Saturate.NONE):
            m.d.comb += [y.eq(window10), fits_error.eq(~fits(window10, ELEMENT_BITS) | out10)]
        error = error10 | fits_error
        m.d.sync += [self.o.valid.eq(valid10), self.o.error.eq(error),
                     self.o.y.eq(Mux(error, 0, y))]
        return m
