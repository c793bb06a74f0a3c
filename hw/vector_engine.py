"""The engine rebuilt on the shared vector unit (issue 18, in progress): a
:class:`~hw.vector_core.VectorCore` running a token's program, its calls served in gateware by a
:class:`~hw.linear.TernaryLinear` (the ternary array and its weight ROM) and, for a program made
with ``ProgramModel(attention_unit=True)``, an attention unit: an
:class:`~hw.attention.AttentionHead` over a :class:`~hw.kv_cache.KvCache` of int8 codes.

Each :class:`~hw.vector_isa.Call` has a job in a table (its kind, addresses, the registers it
reads and writes); while the core waits for it:

* ``matmul`` ``(layer, matrix, dst)``, reading ``x[n]``: the int8 codes are read from the
  scratchpad, ``simd`` to a beat, into the array's activation buffer; the product of matrix
  ``layer · 7 + index`` starts; its ``N`` accumulators are written to ``dst`` as they leave the
  array (one a cycle, the scratchpad's access port being free by then).
* ``cache`` ``(layer, part, kv head, position)``, reading a head's codes and its scale register:
  the codes go into the KV cache's ``part`` (k or v), ``attention_lanes`` to a word, then the scale.
* ``attend`` ``(layer, kv head, positions, dst)``, reading q's codes and its scale register: the
  codes go to the attention head, ``attention_lanes`` to a beat, which attends over the first
  ``positions`` entries of the kv head's cache; its value sums are written to ``dst`` one a cycle
  as they leave and their row scale into the call's register (``attend_sums``).
* any other call (a trace) resumes the core at once.

A scale register is read in the cycle after the job (the register file's port has one cycle of
latency). While the core is idle, ``access`` and ``register`` reach the scratchpad and the
registers, as the core's own ports do (the caller's inputs before a run, its results after).
``error`` is the core's, or the attention head's ``invalid`` (a scale it cannot take).
"""

import math

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS, SCALE_BITS

from .arith import check_integers, divisors
from .attention import AttentionHead
from .kv_cache import KvCache
from .linear import TernaryLinear
from .scalar_unit import register_layout
from .sequencer import MATRICES
from .vector_core import Program, VectorCore
from .vector_isa import ELEMENT_BITS


class Job(enum.Enum, shape=2):
    TRACE = 0
    MATMUL = 1
    CACHE = 2
    ATTEND = 3


class VectorEngine(wiring.Component):
    """``program`` (a :class:`~hw.vector_core.Program` of ``model``'s token programs) on a core of
    ``lanes`` lanes, its matmuls on a ``rows`` × ``simd`` array over ``model``'s matrices, its
    attention (if it calls for it) on an attention head of ``attention_lanes`` lanes.

    Parameters
    ----------
    model : model.integer.IntegerModel
        The model whose matrices the weight ROM holds (layer by layer, ``hw.sequencer.MATRICES``).
    program : Program
        The instructions; its calls as ``hw.vector_programs.ProgramModel`` makes them.
    rows, simd, lanes : int
        The array's output channels and K-lanes; the vector unit's lanes.
    attention_lanes : int
        Elements the attention head takes a cycle, and a KV cache word's (divides the head size).
    """

    def __init__(self, model, program: Program, *, rows: int, simd: int, lanes: int, attention_lanes: int = 1):
        cfg = model.config
        d = cfg.dim_per_head
        check_integers((("attention_lanes", attention_lanes, 1, d),))
        if d % attention_lanes:
            raise ValueError(f"attention_lanes must divide the head size {d}, not {attention_lanes}; "
                             f"{divisors(d)} would")
        self._linear = TernaryLinear([getattr(layer, name).codes
                                      for layer in model.layers for name in MATRICES],
                                     rows=rows, simd=simd)
        self._core = VectorCore(program, lanes=lanes)
        self._model, self._program, self._simd, self._attention_lanes = model, program, simd, attention_lanes
        # elements read a cycle into a beat: a part of a scratchpad row that fits the beat
        self._chunks = {Job.MATMUL: math.gcd(lanes, simd), Job.CACHE: math.gcd(lanes, attention_lanes),
                        Job.ATTEND: math.gcd(lanes, attention_lanes)}
        number = program.number
        jobs = []
        for call in program.calls:
            job = {"kind": Job.TRACE}
            if call.kind == "matmul":
                layer, matrix, dst = call.args
                (x, n), = call.memory
                job = {"kind": Job.MATMUL, "matrix": layer * len(MATRICES) + MATRICES.index(matrix), "x": x,
                       "n": n, "dst": dst}
            elif call.kind == "cache":
                layer, part, kv_head, position = call.args
                (x, n), = call.memory
                job = {"kind": Job.CACHE, "layer": layer, "value": int(part == "v"), "kv_head": kv_head,
                       "position": position, "x": x, "n": n, "read": number[call.reads[0]]}
            elif call.kind == "attend":
                layer, kv_head, positions, dst = call.args
                (x, n), = call.memory
                job = {"kind": Job.ATTEND, "layer": layer, "kv_head": kv_head, "position": positions, "x": x,
                       "n": n, "dst": dst, "read": number[call.reads[0]], "write": number[call.writes[0]]}
            if job["kind"] is not Job.TRACE and job["x"] % self._chunks[job["kind"]]:
                raise ValueError(f"a {call.kind} call reads x at {job['x']}, where it must start on a multiple "
                                 f"of {self._chunks[job['kind']]} (its codes are read that many a cycle)")
            jobs.append(job)
        self._jobs = jobs
        self._attends = any(job["kind"] in (Job.CACHE, Job.ATTEND) for job in jobs)
        context = cfg.max_position_embeddings
        if self._attends:
            self._attention = AttentionHead(head_dim=d, lanes=attention_lanes, out_lanes=1,
                                            max_positions=context)
            if self._attention.out_bits > ELEMENT_BITS:
                raise ValueError(f"an attention head's sums take {self._attention.out_bits} bits over "
                                 f"{context} positions, more than a scratchpad element's {ELEMENT_BITS}")
        depth = program.depth
        self._job_layout = data.StructLayout({
            "kind": Job, "matrix": range(len(MATRICES) * len(model.layers)), "x": range(depth),
            "n": range(depth + 1), "dst": range(depth), "layer": range(len(model.layers)), "value": 1,
            "kv_head": range(cfg.num_key_value_heads), "position": range(context + 1),
            "read": range(program.registers), "write": range(program.registers)})
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

    def cycles(self) -> int:
        """Clock edges from ``start`` to ``done``, for a program that runs without error: the core's
        timeline with each call's :meth:`call_cycles`."""
        return self._core.timeline(self._program.ops, self._core.lanes, self.call_cycles)

    def call_cycles(self, call) -> int:
        """Cycles from a call's transfer to the core's ``resume``: the job read (2), its scale
        register read (1) and the codes read, a beat at a time (a part of a scratchpad row a
        cycle, then 3 cycles to take the last and hand the beat on); then the matrix product's
        cycles, or the cache entry's scale, or the attention head's cycles and its ``d`` sums
        written."""
        if call.kind not in ("matmul", "cache", "attend"):
            return 2
        (_, n), = call.memory

        def load(kind, width):
            """A beat of k elements: its reads, ``chunk`` elements each, then 3 cycles."""
            chunk = self._chunks[kind]
            return sum(-(-min(width, n - first) // chunk) + 3 for first in range(0, n, width))
        if call.kind == "matmul":
            layer, matrix, _ = call.args
            return 5 + load(Job.MATMUL, self._simd) + self._linear.cycles(layer * len(MATRICES)
                                                                         + MATRICES.index(matrix))
        if call.kind == "cache":
            return 5 + load(Job.CACHE, self._attention_lanes)
        return 3 + load(Job.ATTEND, self._attention_lanes) + self._attention.cycles(call.args[2]) + n

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        m.submodules.linear = linear = self._linear
        simd, att_lanes, cfg = self._simd, self._attention_lanes, self._model.config
        attention_error = Signal()
        m.d.comb += [core.start.eq(self.start), self.busy.eq(core.busy), self.done.eq(core.done),
                     self.error.eq(core.error | attention_error), self.register_data.eq(core.register_data),
                     self.access_data.eq(core.access_data)]

        layout = self._job_layout
        m.submodules.jobs = jobs = Memory(shape=layout.size, depth=max(len(self._jobs), 1), init=[
            layout.const(job).as_value().value for job in self._jobs])
        job_read = jobs.read_port()
        job = Signal(layout)
        m.d.comb += job_read.addr.eq(core.call.payload)

        # the scratchpad's and the registers' ports: the caller's while the core is idle, the
        # server's during a call
        serving = Signal()
        port, register = core.access, core.register
        with m.If(~serving):
            m.d.comb += [port.eq(self.access), register.eq(self.register)]

        if self._attends:
            m.submodules.cache = cache = KvCache(layers=len(self._model.layers), kv_heads=cfg.num_key_value_heads,
                                                 head_dim=cfg.dim_per_head, positions=cfg.max_position_embeddings,
                                                 lanes=att_lanes)
            m.submodules.attention = attention = self._attention
            for name in ("keys", "values", "key_scales", "value_scales"):
                wiring.connect(m, getattr(attention, name), getattr(cache, name))
            scale_layout = attention.q_scale.shape()
            scale = Signal(scale_layout)        # the call's scale register (q's, or the entry's)
            coef = self._model.score_coef
            m.d.comb += [attention.q_scale.eq(scale),
                         attention.score_coef.eq(scale_layout.const({"mant": int(coef[0]), "exp": int(coef[1])})),
                         attention.length.eq(job.position),
                         cache.write_layer.eq(job.layer), cache.write_head.eq(job.kv_head),
                         cache.write_position.eq(job.position), cache.read_layer.eq(job.layer),
                         cache.read_head.eq(job.kv_head), cache.values_head.eq(job.kv_head),
                         cache.value_scales_head.eq(job.kv_head)]
            for stream_ in (cache.k_scale, cache.v_scale):
                m.d.comb += [stream_.payload.mant.eq(scale.mant), stream_.payload.exp.eq(scale.exp)]
            with m.If(self.start):
                m.d.sync += attention_error.eq(0)

        depth = self._program.depth
        width = max(simd, att_lanes)
        beat_width = Signal(range(width + 1))  # a beat's elements: simd for the array, else the unit's
        m.d.comb += beat_width.eq(Mux(job.kind == Job.MATMUL, simd, att_lanes))
        lanes = self._core.lanes
        index = Signal(range(depth + width + 1))   # x elements read so far
        issued = Signal(range(width + 1))      # elements issued for the beat being packed
        captured = Signal(range(width + 1))    # elements in it
        reading = Signal()                     # a read issued the cycle before: its row is here
        read_index = Signal.like(index)        # the first element it reads
        read_lane = Signal(range(lanes))       # that element's place in its row
        beat = Signal(data.ArrayLayout(signed(ACT_BITS), width))
        written = Signal(range(depth + 1))
        last = index >= job.n

        def capture(kind, beat_width):
            """The row read the cycle before into the beat: its ``chunk`` elements from read_lane
            into the beat from ``captured`` on (those past x's end as 0)."""
            chunk = self._chunks[kind]
            row = core.access_row
            for slot in range(beat_width // chunk):
                with m.If(captured == slot * chunk):
                    for t in range(chunk):
                        with m.Switch(read_lane // chunk if chunk < lanes else 0):
                            for place in range(lanes // chunk):
                                with m.Case(place):
                                    m.d.sync += beat[slot * chunk + t].eq(
                                        Mux(read_index + t < job.n, row[place * chunk + t][:ACT_BITS].as_signed(), 0))
            m.d.sync += captured.eq(captured + chunk)
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
            with m.State("CHECK"):             # its scale register read
                m.d.comb += [serving.eq(1), register.addr.eq(job.read)]
                with m.If(job.kind == Job.TRACE):
                    m.d.comb += core.resume.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "SCALE"
            with m.State("SCALE"):
                m.d.comb += serving.eq(1)
                if self._attends:
                    m.d.sync += [scale.mant.eq(core.register_data.value[:SCALE_BITS]),
                                 scale.exp.eq(core.register_data.exp)]
                m.next = "LOAD"
            with m.State("LOAD"):
                # a beat's x elements read a part of a row a cycle (it arrives the cycle after),
                # the last beat's missing lanes left at zero
                issue, step = Signal(), Signal(range(width + 1))
                m.d.comb += [serving.eq(1), port.addr.eq(job.x + index),
                             issue.eq((issued < beat_width) & (index < job.n)),
                             step.eq(Mux(job.kind == Job.MATMUL, self._chunks[Job.MATMUL],
                                         self._chunks[Job.ATTEND]))]
                m.d.sync += [reading.eq(issue), read_index.eq(index), read_lane.eq((job.x + index) % lanes)]
                with m.If(issue):
                    m.d.sync += [index.eq(index + step), issued.eq(issued + step)]
                with m.If(reading):
                    with m.If(job.kind == Job.MATMUL):
                        capture(Job.MATMUL, simd)
                    with m.Else():
                        capture(Job.ATTEND, att_lanes)
                with m.If(~issue & ~reading):
                    m.next = "BEAT"
            with m.State("BEAT"):              # the beat to the array, the attention head or the cache
                m.d.comb += serving.eq(1)
                taken = Signal()
                with m.Switch(job.kind):
                    with m.Case(Job.MATMUL):
                        m.d.comb += [linear.x.payload.data.eq(beat[:simd]), linear.x.payload.last.eq(last),
                                     linear.x.valid.eq(1), taken.eq(linear.x.ready)]
                    if self._attends:
                        with m.Case(Job.ATTEND):
                            m.d.comb += [attention.q.payload.eq(beat[:att_lanes]), attention.q.valid.eq(1),
                                         taken.eq(attention.q.ready)]
                        with m.Case(Job.CACHE):
                            for part, codes in ((0, cache.k), (1, cache.v)):
                                with m.If(job.value == part):
                                    m.d.comb += [codes.payload.data.eq(beat[:att_lanes]),
                                                 codes.payload.last.eq(last), codes.valid.eq(1),
                                                 taken.eq(codes.ready)]
                with m.If(taken):
                    m.d.sync += [beat.eq(0), issued.eq(0), captured.eq(0)]
                    with m.If(~last):
                        m.next = "LOAD"
                    with m.Elif(job.kind == Job.MATMUL):
                        m.next = "START"
                    if self._attends:
                        with m.Elif(job.kind == Job.ATTEND):
                            m.next = "SUMS"
                        with m.Else():
                            m.next = "ENTRY_SCALE"
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
            if self._attends:
                with m.State("ENTRY_SCALE"):   # the cache entry's scale, after its codes
                    m.d.comb += [serving.eq(1), cache.k_scale.valid.eq(~job.value),
                                 cache.v_scale.valid.eq(job.value)]
                    m.next = "RESUME"
                with m.State("SUMS"):          # the head's value sums as they leave, then the row scale
                    o = attention.o.payload
                    m.d.comb += [serving.eq(1), attention.o.ready.eq(1), port.addr.eq(job.dst + written),
                                 port.data.eq(o.data[0]), port.write.eq(attention.o.valid),
                                 register.addr.eq(job.write), register.data.value.eq(o.scale.mant),
                                 register.data.exp.eq(o.scale.exp),
                                 register.write.eq(attention.o.valid & o.last)]
                    with m.If(attention.o.valid):
                        m.d.sync += written.eq(written + 1)
                        with m.If(o.invalid):
                            m.d.sync += attention_error.eq(1)
                        with m.If(o.last):
                            m.next = "RESUME"
            with m.State("RESUME"):
                m.d.comb += [serving.eq(1), core.resume.eq(1)]
                m.next = "IDLE"
        return m
