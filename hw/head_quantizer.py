"""Per-head int8 quantization of q, k or v, exactly ``model.integer.quantize_heads``
(docs/numerics.md §6): each head's accumulators (real value ``acc · acc_scale``) become int8 codes
(:class:`~hw.quantizer.AbsmaxQuantizer`) and one scale
``(scale_from_int(m, 0) · acc_scale) · (1/127)`` with ``m`` the head's ``max|acc|``, made by a
three-command :class:`~hw.scale_unit.ScaleProgram` while the codes stream out.

A head arrives on ``i`` (``lanes`` values per beat, ``last`` on its final beat); its codes leave on
``o`` (``last`` likewise) and its scale on ``scale``. The AbsmaxQuantizer has two banks: the next head
is taken while one is divided and its codes leave. A head's first code beat is held until its
peak is latched for the scale program, which runs once the previous head's scale is taken.
``acc_scale`` must hold from a head's first beat until its scale is out.
"""

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS, INV_ACT_MAX, SCALE_EXP_BITS

from .arith import check_integers
from .quantizer import MAX_LANES, AbsmaxQuantizer
from .scale_unit import ScaleOp, ScaleProgram, scale_layout, scale_unit_members, scale_unit_of

PROGRAM = (
    ("peak", ScaleOp.FROM_INT, None, None, "peak"),
    ("peak_scaled", ScaleOp.MUL, "peak", "acc_scale", None),
    ("scale", ScaleOp.MUL, "peak_scaled", "inv_act_max", None),
)


class HeadQuantizer(wiring.Component):
    """Per-head int8 codes and scale of q, k or v (``model.integer.quantize_heads``): an
    AbsmaxQuantizer and a three-operation scale program, a head at a time; the first code
    :attr:`latency` cycles after a head's last beat, its scale :meth:`scale_cycles` after that.

    Parameters
    ----------
    width : int
        Signed width of the accumulators (2 to 48).
    lanes : int
        Elements per beat (1 to 64).
    head_dim : int
        Elements per head.
    exp_bits : int
        Exponent width of the scales.
    shared_scale : bool
        Run the scale program on a :class:`~hw.scale_unit.SharedScaleUnit` through the
        ``scale_unit`` port instead of a ScaleUnit of its own.
    """

    def __init__(self, *, width: int, lanes: int = 1, head_dim: int, exp_bits: int = SCALE_EXP_BITS,
                 shared_scale: bool = False):
        check_integers((("width", width, 2, 48), ("lanes", lanes, 1, MAX_LANES),
                        ("head_dim", head_dim, 1, 1 << 16)))
        self._width, self._lanes, self._head_dim = width, lanes, head_dim
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(width), lanes), "last": 1}))),
            "acc_scale": In(scale_layout(exp_bits)),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(ACT_BITS), lanes), "last": 1}))),
            "scale": Out(stream.Signature(data.StructLayout({
                "mant": unsigned(16), "exp": signed(exp_bits), "invalid": 1}))),
            **scale_unit_members(shared_scale, exp_bits, width),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    head_dim = property(lambda self: self._head_dim)

    @staticmethod
    def latency_of(lanes: int) -> int:
        """Cycles from a head's last input beat to its first code offered at ``lanes`` lanes, no
        stalls: the AbsmaxQuantizer's latency and one to latch the head's peak for the scale
        program."""
        return AbsmaxQuantizer.latency_of(lanes) + 1

    latency = property(lambda self: self.latency_of(self._lanes))

    def scale_cycles(self) -> int:
        """Cycles from a head's peak latched (its first code offered) to its scale valid: the
        scale program (:data:`PROGRAM`)."""
        return self.scale_cycles_of()

    @staticmethod
    def scale_cycles_of() -> int:
        """:meth:`scale_cycles` without a unit (it does not depend on the widths)."""
        return ScaleProgram.cycles(PROGRAM)

    def elaborate(self, platform):
        m = Module()
        exp_bits = len(self.acc_scale.exp)
        m.submodules.quantizer = quantizer = AbsmaxQuantizer(
            width=self._width, lanes=self._lanes, max_length=self._head_dim, banks=2)
        unit = scale_unit_of(m, self, exp_bits=exp_bits, int_bits=self._width)
        wiring.connect(m, wiring.flipped(self.i), quantizer.i)

        first = Signal(init=1)          # the next code beat starts a head
        latched = Signal()              # that head's peak is in the scale program
        peak = Signal(self._width)
        hold = first & ~latched
        m.d.comb += [self.o.payload.data.eq(quantizer.o.payload.data),
                     self.o.payload.last.eq(quantizer.o.payload.last),
                     self.o.valid.eq(quantizer.o.valid & ~hold),
                     quantizer.o.ready.eq(self.o.ready & ~hold)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += first.eq(self.o.payload.last)
            with m.If(first):
                m.d.sync += latched.eq(0)

        program = ScaleProgram(PROGRAM, exp_bits)
        scale = scale_layout(exp_bits)
        sources = {"acc_scale": self.acc_scale,
                   "inv_act_max": scale.const({"mant": INV_ACT_MAX[0], "exp": INV_ACT_MAX[1]})}
        result = program.results["scale"]
        with m.FSM():
            with m.State("WAIT"):
                with m.If(quantizer.o.valid & hold):
                    m.d.sync += [peak.eq(quantizer.o.payload.peak), latched.eq(1)] + program.start()
                    m.next = "ISSUE"
            program.states(m, unit, sources, {"peak": (peak, 0)}, "ISSUE", "RESULT", "SCALE")
            with m.State("SCALE"):
                m.d.comb += [self.scale.valid.eq(1), self.scale.payload.mant.eq(result.mant),
                             self.scale.payload.exp.eq(result.exp),
                             self.scale.payload.invalid.eq(program.invalid)]
                with m.If(self.scale.ready):
                    m.next = "WAIT"
        return m
