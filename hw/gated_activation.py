"""The MLP's gated activation ``act(gate) ⊙ up`` from the gate and up accumulators, exactly
``model.integer.gated_activation`` (docs/numerics.md §7), for ``hidden_act`` ``"relu2"`` or
``"silu"``.

``gate`` and ``up`` (real values ``acc · gate_scale`` and ``acc · up_scale``) arrive together on
``i``, ``lanes`` of each per beat, ``last`` on a vector's final beat. Then:

1. **Load**: both are stored while the shifts that bring the activation and ``up`` to 17 bits
   (``normalize``) are found from their maxima. relu² stores the gate (``max(gate, 0)²`` is the
   largest square); SiLU stores ``silu_q10(apply_scale(gate, gate_scale, 10))``, computed on the way
   in: one multiply, a rounding shift, the 2048-entry sigmoid table (two cycles).
2. **Scale**: a :class:`~hw.scale_unit.ScaleUnit` runs the activation's program (:data:`PROGRAMS`)
   for the result's scale, which goes out on ``scale``: relu² ``gate_scale² · 2^e_act · up_scale ·
   2^e_up``, SiLU ``2^(e_act − 10) · up_scale · 2^e_up``.
3. **Emit**: once the scale is taken, ``o`` carries ``(act >> e_act) · (up >> e_up)`` (magnitudes
   truncated, as ``normalize``), one beat per cycle: ``out_bits``-bit signed products, the input of
   the FFN sub-norm's :class:`~hw.rms_quantizer.RmsQuantizer`.

SiLU's Q.10 input comes from a right shift of ``gate · mant``; a ``gate_scale`` of 64 or more would
need a left shift (numerics allows it): ``scale.invalid`` flags it. Cycles for ``b`` beats with no
stalls: :meth:`cycles`.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from model.numerics import (NORM_BITS, NORM_MAX_BITLEN, SCALE_EXP_BITS, SIGMOID_FRAC, SIGMOID_RANGE,
                            SIGMOID_STEP_BITS, SIGMOID_TABLE, SILU_FRAC)

from .arith import bit_length, check_integers, magnitude, max_tree, read_pass, rounded_right_shift, store_beat
from .scale_unit import ScaleOp, ScaleProgram, ScaleUnit, scale_layout

UP_PROGRAM = (
    ("up_unit", ScaleOp.FROM_INT, None, None, "up_shift"),
    ("up", ScaleOp.MUL, "up_scale", "up_unit", None),
    ("product", ScaleOp.MUL, "act", "up", None),
)
PROGRAMS = {
    "relu2": (("gate_sq", ScaleOp.MUL, "gate_scale", "gate_scale", None),
              ("act_unit", ScaleOp.FROM_INT, None, None, "act_shift"),
              ("act", ScaleOp.MUL, "gate_sq", "act_unit", None)) + UP_PROGRAM,
    "silu": (("act", ScaleOp.FROM_INT, None, None, "act_shift"),) + UP_PROGRAM,
}


class GatedActivation(wiring.Component):
    """``act(gate) ⊙ up`` for relu² or SiLU (``model.integer.gated_activation``) over a
    vector's beats; :meth:`cycles` from a vector's first input to its last output.

    Parameters
    ----------
    width : int
        Signed width of the gate and up accumulators (2 to 32 bits).
    lanes : int
        Elements per beat.
    max_length : int
        Longest vector in elements (the MLP's intermediate size).
    kind : str
        ``"relu2"`` or ``"silu"``.
    exp_bits : int
        Exponent width of the scales.
    """

    def __init__(self, *, width: int, lanes: int = 1, max_length: int, kind: str = "relu2",
                 exp_bits: int = SCALE_EXP_BITS):
        check_integers((("width", width, 2, 32), ("lanes", lanes, 1, 1024),
                        ("max_length", max_length, 1, 1 << 20)))
        if kind not in PROGRAMS:
            raise ValueError(f"kind must be one of {sorted(PROGRAMS)}, not {kind!r}")
        self._width, self._lanes, self._kind = width, lanes, kind
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
                "data": data.ArrayLayout(signed(self.out_bits), lanes), "last": 1}))),
        })

    width = property(lambda self: self._width)
    lanes = property(lambda self: self._lanes)
    depth = property(lambda self: self._depth)
    kind = property(lambda self: self._kind)
    out_bits = property(lambda self: self.out_bits_of(self._kind))
    act_bits = property(lambda self: self.act_bits_of(self._kind, self._width))

    @staticmethod
    def out_bits_of(kind: str) -> int:
        """:attr:`out_bits` of a unit of ``kind``: relu², an unsigned 17-bit square; SiLU, a
        signed 18-bit value; times a signed 18-bit up."""
        return NORM_BITS + (NORM_MAX_BITLEN if kind == "relu2" else NORM_BITS)

    @staticmethod
    def act_bits_of(kind: str, width: int) -> int:
        """:attr:`act_bits` of a unit of ``kind`` for ``width``-bit inputs (SiLU's Q.10 input:
        gate · mant shifted right by at least 0)."""
        return width if kind == "relu2" else width + 17

    def cycles(self, beats: int) -> int:
        """Clock edges from a vector's first input transfer to its last output, no stalls."""
        return self.cycles_of(self._kind, beats)

    @staticmethod
    def cycles_of(kind: str, beats: int) -> int:
        """:meth:`cycles` of a unit of ``kind`` (for a cycle model without a unit)."""
        # load (SiLU: 2 more, the multiply and the sigmoid table on the way in), the scale
        # program, then the emit pass: 3 to a product out (read, normalize, multiply) and a
        # product a cycle
        load = beats + (2 if kind == "silu" else 0)
        return load + 1 + ScaleProgram.cycles(PROGRAMS[kind]) + 1 + 3 + beats - 1

    def elaborate(self, platform):
        m = Module()
        width, lanes, silu = self._width, self._lanes, self._kind == "silu"
        act_bits = self.act_bits
        exp_bits = len(self.scale.payload.exp)
        m.submodules.scale_unit = unit = ScaleUnit(exp_bits=exp_bits, int_bits=1)
        pair = data.StructLayout({"act": data.ArrayLayout(signed(act_bits), lanes),
                                  "up": data.ArrayLayout(signed(width), lanes)})
        m.submodules.buffer = buffer = memory.Memory(shape=pair, depth=self._depth, init=[])
        wr, rd = buffer.write_port(), buffer.read_port()

        length = Signal(range(self._depth + 1))
        act_peak = Signal(act_bits)        # relu²: max(gate, 0); SiLU: max|silu|
        up_peak = Signal(width)            # max|up|
        invalid = Signal()

        # -- load: the activation's input side (relu²: the gate itself; SiLU: silu_q10) ----------
        stored_valid, stored_last = Signal(), Signal()
        stored_act = [Signal(signed(act_bits), name=f"stored_act{lane}") for lane in range(lanes)]
        stored_up = [Signal(signed(width), name=f"stored_up{lane}") for lane in range(lanes)]
        take = Signal()
        if silu:
            self._silu_front(m, take, stored_valid, stored_last, stored_act, stored_up, invalid)
        else:
            m.d.comb += [stored_valid.eq(take), stored_last.eq(self.i.payload.last)]
            m.d.comb += [stored_act[lane].eq(self.i.payload.gate[lane]) for lane in range(lanes)]
            m.d.comb += [stored_up[lane].eq(self.i.payload.up[lane]) for lane in range(lanes)]
        if silu:
            act_max = max_tree(m, [magnitude(v)[:act_bits] for v in stored_act], act_bits, "beat_act_max")
        else:
            act_max = max_tree(m, [Mux(v > 0, v, 0).as_unsigned()[:act_bits] for v in stored_act],
                               act_bits, "beat_act_max")
        up_max = max_tree(m, [magnitude(u)[:width] for u in stored_up], width, "beat_up_max")

        def shift_for(value, name):
            """normalize's e = max(0, bitlen(max) - 17), registered."""
            length_ = bit_length(m, value, f"{name}_bitlen")
            shift = Signal(range(max(len(value) - NORM_MAX_BITLEN, 0) + 1), name=name)
            return shift, Mux(length_ > NORM_MAX_BITLEN, length_ - NORM_MAX_BITLEN, 0)
        act_extreme = Signal(2 * act_bits if not silu else act_bits)
        m.d.comb += act_extreme.eq(act_peak * act_peak if not silu else act_peak)
        e_act, e_act_next = shift_for(act_extreme, "e_act")
        e_up, e_up_next = shift_for(up_peak, "e_up")

        program = ScaleProgram(PROGRAMS[self._kind], exp_bits)
        sources = {"gate_scale": self.gate_scale, "up_scale": self.up_scale}
        integers = {"act_shift": (1, e_act - SILU_FRAC if silu else e_act), "up_shift": (1, e_up)}
        result = program.results["product"]

        # -- emit: read (memory) -> act_n and up_n (register) -> product (output register) -------
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        read_addr = Signal(range(self._depth + 1))
        issue = Signal()
        s1_valid, s1_last, s2_valid, s2_last = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [rd.addr.eq(read_addr), rd.en.eq(advance)]
        act_n = [Signal(signed(NORM_BITS), name=f"act_n{lane}") for lane in range(lanes)]
        up_n = [Signal(signed(NORM_BITS), name=f"up_n{lane}") for lane in range(lanes)]

        def truncated(value, shift):
            shifted = (magnitude(value) >> shift)[:NORM_BITS]
            return Mux(value < 0, -shifted, shifted)
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_last.eq(read_addr == length - 1),
                         s2_valid.eq(s1_valid), s2_last.eq(s1_last),
                         self.o.valid.eq(s2_valid), self.o.payload.last.eq(s2_last)]
            for lane in range(lanes):
                act, up = rd.data.act[lane], rd.data.up[lane]
                if silu:
                    m.d.sync += act_n[lane].eq(truncated(act, e_act))
                else:
                    relu = Mux(act > 0, act, 0).as_unsigned()[:width]
                    m.d.sync += act_n[lane].eq((relu * relu) >> e_act)
                m.d.sync += [up_n[lane].eq(truncated(up, e_up)),
                             self.o.payload.data[lane].eq(act_n[lane] * up_n[lane])]

        with m.FSM():
            with m.State("LOAD"):
                # After a vector's last beat nothing more is taken until it has been stored.
                closing = Signal()
                m.d.comb += [self.i.ready.eq(~closing), take.eq(self.i.valid & ~closing)]
                with m.If(take & self.i.payload.last):
                    m.d.sync += closing.eq(1)
                with m.If(stored_valid):
                    store_beat(m, wr, length, self._depth,
                               Cat(*(v for v in stored_act), *(v for v in stored_up)),
                               [(act_max, act_peak), (up_max, up_peak)])
                    with m.If(stored_last):
                        m.d.sync += closing.eq(0)
                        m.next = "SHIFTS"
            with m.State("SHIFTS"):
                m.d.sync += [e_act.eq(e_act_next), e_up.eq(e_up_next)] + program.start()
                m.next = "ISSUE"
            program.states(m, unit, sources, integers, "ISSUE", "RESULT", "SCALE")
            with m.State("SCALE"):
                m.d.comb += [self.scale.valid.eq(1), self.scale.payload.mant.eq(result.mant),
                             self.scale.payload.exp.eq(result.exp),
                             self.scale.payload.invalid.eq(program.invalid | invalid)]
                with m.If(self.scale.ready):
                    m.d.sync += read_addr.eq(0)
                    m.next = "EMIT"
            with m.State("EMIT"):
                with m.If(read_pass(m, issue, read_addr, length, advance, (s1_valid, s2_valid))):
                    m.d.sync += [length.eq(0), act_peak.eq(0), up_peak.eq(0), invalid.eq(0)]
                    m.next = "LOAD"
        return m

    def _silu_front(self, m, take, valid, last, act, up, invalid):
        """silu_q10(apply_scale(gate, gate_scale, 10)) on the way in: the Q.10 input and the table
        address (stage 1, registered), the table read and the product (stage 2, registered)."""
        width, lanes = self._width, self._lanes
        table = memory.Memory(shape=unsigned(SIGMOID_FRAC), depth=SIGMOID_TABLE.size,
                              init=[int(v) for v in SIGMOID_TABLE])
        m.submodules.sigmoid = table
        product_bits = width + 17
        shift = Signal(signed(len(self.gate_scale.exp) + 2))
        m.d.comb += shift.eq(-(self.gate_scale.exp + SILU_FRAC))
        s1_valid, s1_last = Signal(), Signal()
        s1_x = [Signal(signed(product_bits), name=f"silu_x{lane}") for lane in range(lanes)]
        s1_up = [Signal(signed(width), name=f"silu_up{lane}") for lane in range(lanes)]
        m.d.sync += [s1_valid.eq(take), s1_last.eq(self.i.payload.last), valid.eq(s1_valid),
                     last.eq(s1_last)]
        with m.If(take & (shift < 0)):
            m.d.sync += invalid.eq(1)
        top = (1 << SIGMOID_STEP_BITS) * 2 * SIGMOID_RANGE - 1
        for lane in range(lanes):
            product = Signal(signed(product_bits), name=f"silu_product{lane}")
            m.d.comb += product.eq(self.i.payload.gate[lane] * self.gate_scale.mant)
            x = rounded_right_shift(m, product, shift, f"silu_q10_{lane}")
            index = (x >> (SILU_FRAC - SIGMOID_STEP_BITS)) + (SIGMOID_RANGE << SIGMOID_STEP_BITS)
            port = table.read_port()
            m.d.comb += port.addr.eq(Mux(index < 0, 0, Mux(index > top, top, index)))
            m.d.sync += [s1_x[lane].eq(x), s1_up[lane].eq(self.i.payload.up[lane]),
                         act[lane].eq((s1_x[lane] * port.data + (1 << (SIGMOID_FRAC - 1)))
                                      >> SIGMOID_FRAC),
                         up[lane].eq(s1_up[lane])]
