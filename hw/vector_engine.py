"""The engine rebuilt on the shared vector unit (issue 18, in progress): a
:class:`~hw.vector_core.VectorCore` running a token's program, its matmul calls served by a
:class:`~hw.linear.TernaryLinear` (the ternary array and its weight ROM), all in gateware.

A ``matmul`` :class:`~hw.vector_isa.Call` (``hw.vector_programs.ProgramModel``'s:
``(layer, matrix, dst)``, reading ``x[n]``) is served in three phases while the core waits: the
int8 codes ``x[0..n)`` are read from the scratchpad, ``simd`` to a beat, into the array's
activation buffer; the product of matrix ``layer · 7 + index`` starts; its ``N`` accumulators are
written to ``dst`` as they leave the array (one a cycle, the scratchpad's access port being free
by then). Then the core resumes. Other calls (traces) resume it at once.

While the core is idle, ``access`` and ``register`` reach the scratchpad and the registers, as
the core's own ports do (the caller's inputs before a run, its results after).
"""

from amaranth import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS

from .linear import TernaryLinear
from .scalar_unit import register_layout
from .sequencer import MATRICES
from .vector_core import Program, VectorCore
from .vector_isa import ELEMENT_BITS


class VectorEngine(wiring.Component):
    """``program`` (a :class:`~hw.vector_core.Program` of ``model``'s token programs) on a core of
    ``lanes`` lanes, its matmuls on a ``rows`` × ``simd`` array over ``model``'s matrices.

    Parameters
    ----------
    model : model.integer.IntegerModel
        The model whose matrices the weight ROM holds (layer by layer, ``hw.sequencer.MATRICES``).
    program : Program
        The instructions; its ``matmul`` calls name a layer, a matrix and a destination.
    rows, simd, lanes : int
        The array's output channels and K-lanes; the vector unit's lanes.
    """

    def __init__(self, model, program: Program, *, rows: int, simd: int, lanes: int):
        self._linear = TernaryLinear([getattr(layer, name).codes
                                      for layer in model.layers for name in MATRICES],
                                     rows=rows, simd=simd)
        self._core = VectorCore(program, lanes=lanes)
        self._program, self._simd = program, simd
        jobs = []                               # per call: (matmul?, matrix, x, n, dst)
        for call in program.calls:
            if call.kind == "matmul":
                layer, matrix, dst = call.args
                (x, n), = call.memory
                jobs.append((1, layer * len(MATRICES) + MATRICES.index(matrix), x, n, dst))
            else:
                jobs.append((0, 0, 0, 0, 0))
        self._jobs = jobs
        depth = program.depth
        self._job_layout = data.StructLayout({
            "matmul": 1, "matrix": range(len(MATRICES) * len(model.layers)), "x": range(depth),
            "n": range(depth + 1), "dst": range(depth)})
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "access": In(data.StructLayout({"addr": range(depth), "data": signed(ELEMENT_BITS), "write": 1})),
            "access_data": Out(signed(ELEMENT_BITS)),
            "register": In(data.StructLayout({"addr": range(program.registers), "data": register_layout(),
                                              "write": 1})),
            "register_data": Out(register_layout()),
        })

    linear = property(lambda self: self._linear)
    core = property(lambda self: self._core)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        m.submodules.linear = linear = self._linear
        simd = self._simd
        m.d.comb += [core.start.eq(self.start), self.busy.eq(core.busy), self.done.eq(core.done),
                     self.error.eq(core.error), core.register.eq(self.register),
                     self.register_data.eq(core.register_data), self.access_data.eq(core.access_data)]

        layout = self._job_layout
        m.submodules.jobs = jobs = Memory(shape=layout.size, depth=max(len(self._jobs), 1), init=[
            layout.const(dict(zip(("matmul", "matrix", "x", "n", "dst"), job))).as_value().value
            for job in self._jobs])
        job_read = jobs.read_port()
        job = Signal(layout)
        m.d.comb += job_read.addr.eq(core.call.payload)

        # the scratchpad's port: the caller's while the core is idle, the server's during a call
        serving = Signal()
        port = core.access
        with m.If(~serving):
            m.d.comb += port.eq(self.access)

        depth = self._program.depth
        index = Signal(range(depth + 1))       # x elements read so far
        issued = Signal(range(simd + 1))       # reads issued for the beat being packed
        captured = Signal(range(simd + 1))     # elements in it
        reading = Signal()                     # a read issued the cycle before: its element is here
        beat = Signal(data.ArrayLayout(signed(ACT_BITS), simd))
        written = Signal(range(depth + 1))
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += core.call.ready.eq(1)
                with m.If(core.call.valid):
                    m.next = "JOB"
            with m.State("JOB"):               # the call's job, read from its table
                m.d.comb += serving.eq(1)
                m.d.sync += [job.eq(job_read.data), index.eq(0), issued.eq(0), captured.eq(0), reading.eq(0),
                             beat.eq(0), written.eq(0)]
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += serving.eq(1)
                with m.If(job.matmul):
                    m.next = "LOAD"
                with m.Else():
                    m.d.comb += core.resume.eq(1)
                    m.next = "IDLE"
            with m.State("LOAD"):
                # a beat's x elements read one a cycle (each arrives the cycle after), the last
                # beat's missing lanes left at zero
                issue = Signal()
                m.d.comb += [serving.eq(1), port.addr.eq(job.x + index),
                             issue.eq((issued < simd) & (index < job.n))]
                m.d.sync += reading.eq(issue)
                with m.If(issue):
                    m.d.sync += [index.eq(index + 1), issued.eq(issued + 1)]
                with m.If(reading):
                    m.d.sync += [beat[captured].eq(core.access_data[:ACT_BITS].as_signed()),
                                 captured.eq(captured + 1)]
                with m.If(~issue & ~reading):
                    m.next = "BEAT"
            with m.State("BEAT"):
                m.d.comb += [serving.eq(1), linear.x.payload.data.eq(beat),
                             linear.x.payload.last.eq(index == job.n),
                             linear.x.valid.eq(1)]
                with m.If(linear.x.ready):
                    m.d.sync += [beat.eq(0), issued.eq(0), captured.eq(0)]
                    with m.If(index == job.n):
                        m.next = "START"
                    with m.Else():
                        m.next = "LOAD"
            with m.State("START"):
                m.d.comb += [serving.eq(1), linear.start.valid.eq(1), linear.start.payload.eq(job.matrix)]
                with m.If(linear.start.ready):
                    m.next = "RESULTS"
            with m.State("RESULTS"):
                m.d.comb += [serving.eq(1), linear.o.ready.eq(1), port.addr.eq(job.dst + written),
                             port.data.eq(linear.o.payload.data), port.write.eq(linear.o.valid)]
                with m.If(linear.o.valid):
                    m.d.sync += written.eq(written + 1)
                    with m.If(linear.o.payload.last):
                        m.next = "RESUME"
            with m.State("RESUME"):
                m.d.comb += [serving.eq(1), core.resume.eq(1)]
                m.next = "IDLE"
        return m
