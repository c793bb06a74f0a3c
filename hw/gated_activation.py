"""The MLP's gated activation ``act(gate) ⊙ up`` from the gate and up accumulators, exactly
``model.integer.gated_activation`` (docs/numerics.md §7), for ``hidden_act = "relu2"``.

``gate`` and ``up`` (real values ``acc · gate_scale`` and ``acc · up_scale``) arrive together on
``i``, ``lanes`` of each per beat, ``last`` on a vector's final beat. Then:

1. **Load**: both are stored while ``max(gate, 0)`` and ``max|up|`` are tracked; the shifts that
   bring ``relu(gate)²`` and ``up`` to 17 bits (``normalize``) follow from them.
2. **Scale**: a :class:`~hw.scale_unit.ScaleUnit` runs :data:`PROGRAM` for the result's scale
   ``gate_scale² · 2^e_sq · up_scale · 2^e_up``, which goes out on ``scale``.
3. **Emit**: once the scale is taken, ``o`` carries ``(relu(gate)² >> e_sq) · (up >> e_up)`` (magnitudes
   truncated, as ``normalize``), one beat per cycle: 17 × 18-bit products, 35-bit signed results,
   the input of the FFN sub-norm's :class:`~hw.rms_quantizer.RmsQuantizer`.

SiLU gating (``hidden_act = "silu"``, a Q.10 input and a sigmoid table) is not built yet: the
shipped models use relu².

Cycles for ``b`` beats with no stalls: ``b`` in, ``1 + PROGRAM_CYCLES`` for the scale, then the
vector's ``b`` beats after a ``latency``-cycle pipeline (:meth:`cycles`).
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import NORM_BITS, NORM_MAX_BITLEN

from .arith import magnitude, max_tree, store_beat
from .scale_unit import ScaleOp, ScaleProgram, ScaleUnit, scale_layout

PROGRAM = (
    ("gate_sq", ScaleOp.MUL, "gate_scale", "gate_scale", None),
    ("square_unit", ScaleOp.FROM_INT, None, None, "square_shift"),
    ("act", ScaleOp.MUL, "gate_sq", "square_unit", None),
    ("up_unit", ScaleOp.FROM_INT, None, None, "up_shift"),
    ("up", ScaleOp.MUL, "up_scale", "up_unit", None),
    ("product", ScaleOp.MUL, "act", "up", None),
)
PROGRAM_CYCLES = ScaleProgram.cycles(PROGRAM)
OUT_BITS = NORM_MAX_BITLEN + NORM_BITS       # unsigned 17-bit square times signed 18-bit up


class GatedActivation(wiring.Component):
    """See the module docstring.

    Parameters
    ----------
    width : int
        Signed width of the gate and up accumulators (2 to 32 bits).
    lanes : int
        Elements per beat.
    max_length : int
        Longest vector in elements (the MLP's intermediate size).
    kind : str
        ``"relu2"`` (``"silu"`` is refused for now).
    exp_bits : int
        Exponent width of the scales.

    Members
    -------
    i : In(stream.Signature(StructLayout({"gate": lanes × signed(width), "up": lanes × signed(width), "last": 1})))
    gate_scale, up_scale : In(scale layout)
    scale : Out(stream.Signature(StructLayout({"mant": 16, "exp": signed(exp_bits), "invalid": 1})))
    o : Out(stream.Signature(StructLayout({"data": lanes × signed(35), "last": 1})))
    """

    latency = 3

    def __init__(self, *, width: int, lanes: int = 1, max_length: int, kind: str = "relu2",
                 exp_bits: int = 12):
        for name, value, low, high in (("width", width, 2, 32), ("lanes", lanes, 1, 1024),
                                       ("max_length", max_length, 1, 1 << 20)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}, not {value!r}")
        if kind != "relu2":
            raise ValueError(f"kind {kind!r} is not built: only 'relu2' gating is in hardware yet")
        self._width, self._lanes = width, lanes
        self._depth = -(-max_length // lanes)
        scale = scale_layout(exp_bits)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "gate": data.ArrayLayout(signed(width), lanes),
                "up": data.ArrayLayout(signed(width), lanes), "last": 1}))),
            "gate_scale": In(scale), "up_scale": In(scale),
            "scale": Out(stream.Signature(data.StructLayout({
                "mant": unsigned(16), "exp": signed(exp_bits), "invalid": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(OUT_BITS), lanes), "last": 1}))),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)

    def cycles(self, beats: int) -> int:
        """Clock edges from a vector's first input transfer to its last output, no stalls."""
        return beats + 1 + PROGRAM_CYCLES + 1 + self.latency + beats - 1

    def elaborate(self, platform):
        m = Module()
        width, lanes = self._width, self._lanes
        exp_bits = len(self.scale.payload.exp)
        m.submodules.scale_unit = unit = ScaleUnit(exp_bits=exp_bits, int_bits=1)
        pair = data.StructLayout({"gate": data.ArrayLayout(signed(width), lanes),
                                  "up": data.ArrayLayout(signed(width), lanes)})
        m.submodules.buffer = buffer = memory.Memory(shape=pair, depth=self._depth, init=[])
        wr, rd = buffer.write_port(), buffer.read_port()

        length = Signal(range(self._depth + 1))
        gate_peak = Signal(width)          # max(gate, 0)
        up_peak = Signal(width)            # max|up|
        square_peak = Signal(2 * width)
        m.d.comb += square_peak.eq(gate_peak * gate_peak)

        def bitlen(value, name):
            result = Signal(range(len(value) + 1), name=name)
            for b in range(len(value)):
                with m.If(value[b]):
                    m.d.comb += result.eq(b + 1)
            return result

        def shift_for(value, name):
            """normalize's e = max(0, bitlen(max) - 17), registered."""
            length_ = bitlen(value, f"{name}_bitlen")
            shift = Signal(range(max(len(value) - NORM_MAX_BITLEN, 0) + 1), name=name)
            return shift, Mux(length_ > NORM_MAX_BITLEN, length_ - NORM_MAX_BITLEN, 0)
        e_sq, e_sq_next = shift_for(square_peak, "e_sq")
        e_up, e_up_next = shift_for(up_peak, "e_up")

        program = ScaleProgram(PROGRAM, exp_bits)
        sources = {"gate_scale": self.gate_scale, "up_scale": self.up_scale}
        integers = {"square_shift": (1, e_sq), "up_shift": (1, e_up)}
        result = program.results["product"]

        # -- emit: read (memory) -> relu² and up_n (register) -> product (output register) -------
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        read_addr = Signal(range(self._depth + 1))
        issue = Signal()
        s1_valid, s1_last, s2_valid, s2_last = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [rd.addr.eq(read_addr), rd.en.eq(advance)]
        square_n = [Signal(NORM_MAX_BITLEN, name=f"square_n{lane}") for lane in range(lanes)]
        up_n = [Signal(signed(NORM_BITS), name=f"up_n{lane}") for lane in range(lanes)]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq(read_addr == length - 1),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last),
                         self.o.valid.eq(s2_valid), self.o.payload.last.eq(s2_last)]
            for lane in range(lanes):
                gate, up = rd.data.gate[lane], rd.data.up[lane]
                relu = Mux(gate > 0, gate, 0).as_unsigned()[:width]
                up_shifted = (magnitude(up) >> e_up)[:NORM_BITS]
                m.d.sync += [square_n[lane].eq((relu * relu) >> e_sq),
                             up_n[lane].eq(Mux(up < 0, -up_shifted, up_shifted)),
                             self.o.payload.data[lane].eq(square_n[lane] * up_n[lane])]

        gate_max = max_tree(m, [Mux(g > 0, g, 0).as_unsigned()[:width] for g in self.i.payload.gate],
                            width, "beat_gate_max")
        up_max = max_tree(m, [magnitude(u)[:width] for u in self.i.payload.up], width, "beat_up_max")
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    store_beat(m, wr, length, self._depth,
                               Cat(self.i.payload.gate.as_value(), self.i.payload.up.as_value()),
                               [(gate_max, gate_peak), (up_max, up_peak)])
                    with m.If(self.i.payload.last):
                        m.next = "SHIFTS"
            with m.State("SHIFTS"):
                m.d.sync += [e_sq.eq(e_sq_next), e_up.eq(e_up_next)] + program.start()
                m.next = "ISSUE"
            program.states(m, unit, sources, integers, "ISSUE", "RESULT", "SCALE")
            with m.State("SCALE"):
                m.d.comb += [self.scale.valid.eq(1), self.scale.payload.mant.eq(result.mant),
                             self.scale.payload.exp.eq(result.exp),
                             self.scale.payload.invalid.eq(program.invalid)]
                with m.If(self.scale.ready):
                    m.d.sync += read_addr.eq(0)
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += issue.eq(read_addr < length)
                with m.If(advance & issue):
                    m.d.sync += read_addr.eq(read_addr + 1)
                with m.If(~issue & ~s1_valid & ~s2_valid & advance):
                    m.d.sync += [length.eq(0), gate_peak.eq(0), up_peak.eq(0)]
                    m.next = "LOAD"
        return m

