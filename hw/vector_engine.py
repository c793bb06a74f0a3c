"""The engine rebuilt on the shared vector unit (issue 18, in progress): a
:class:`~hw.vector_core.VectorCore` running a token's program, its calls served in gateware by a
:class:`~hw.linear.TernaryLinear` (the ternary array and its weight ROM) and, as the program
calls for them (``hw.vector_programs.ProgramModel(units=True)``'s program, one for every token), an
attention unit (an :class:`~hw.attention.AttentionHead` over a :class:`~hw.kv_cache.KvCache` of
int8 codes, its row scale computed on the scalar unit's ScaleUnit, lent while the core waits for
the call) and the token table (:class:`~hw.token_table.TokenTable`: the embedding's rows and
the LM head, int8 codes in ROM; one table for a tied model, two for an untied one) and RoPE's
table (each position's cos and sin rows, Q1.14, in ROM). A run (``start``) computes one token:
``token`` and ``position`` are held while it runs, and the KV cache holds the positions before.

Each :class:`~hw.vector_isa.Call` has a job in a table (its kind, addresses, the registers it
reads and writes); while the core waits for it:

* ``matmul`` ``(layer, matrix, dst)``, reading ``x[n]``: where every matmul reads one region
  (on a scratchpad row, with ``simd`` a power-of-two multiple of ``lanes``), the array's activation
  buffer is a copy of it: every write into the region (the core's ``written``) goes into the
  buffer a cycle later, so the codes are there as the pass that makes them ends (a detached call's
  codes are left alone until the next call: ``VectorMachine`` checks it). Else the int8 codes
  are read from the scratchpad into the buffer, ``simd`` to a beat, unless the buffer holds them
  (the matmul before read the same region and no instruction wrote into it since: k and v after
  q, up after gate: the job table marks them). Then the product of matrix
  ``layer · 7 + index`` starts; its ``N`` accumulators are written to ``dst`` as they leave the
  array: in the core's results memory where the program has one, a tile's rows a part of a
  results row a cycle (the part: the largest that divides both ``rows`` and the row), else into
  the scratchpad one a cycle. There a
  ``detach``\\ ed call resumes the core as the product starts, its accumulators landing while the
  core goes on; the next call is taken once the last has landed.
* ``cache`` ``(layer, part, kv head)``, reading a head's codes and its scale register: the codes
  go into the KV cache's ``part`` (k or v) at ``position``, ``attention_lanes`` to a word, then
  the scale.
* ``attend`` ``(layer, kv head, dst)``, reading the codes of a layer's queries and their scale
  registers (read first, one a cycle): the codes go to the attention head, ``attention_lanes`` to
  a beat, which attends over the cache up to ``position``, the first group of queries (the heads
  that share a kv head) over ``kv head``'s and each next group over the next kv head's, up to
  three queries in flight (each query's scale given to the head until it starts weighing it,
  ``AttentionHead.weights_start``; each pass of the head reads the kv head of the query it
  started); each query's value sums are written to ``dst`` on in the
  results memory as they leave, a part of a row a cycle, while the later queries are still
  handed on, and their row scale into the query's register (``attend_sums``).
* ``embed`` ``(dst,)``: ``token``'s row of int8 codes into ``dst`` in the results memory, a part of
  a row a cycle, and its row mantissa into the call's register.
* ``rope`` ``(dst,)``: ``position``'s cos and sin rows (``d/2`` each) into ``dst``, one a cycle.
* ``lm_head`` ``(dst,)``, reading ``x[hidden]``: the codes go to the LM head, ``head_lanes`` to a
  beat; the integer logits are written to ``dst`` one a cycle as they leave.
* any other call (a trace) resumes the core at once.

A beat's codes are read a part of a scratchpad row a cycle (``access_row``; the part is the
largest that divides both the row and the beat, and a call's codes must start on it); the cycle
that hands a beat on reads the next beat's first part. A scale
register is read in the cycle after the job (the register file's port has one cycle of latency).
While the core is idle, ``access`` and ``register`` reach the scratchpad and the registers, as
the core's own ports do (the caller's inputs before a run, its results after). ``error`` is the
core's, the attention head's ``invalid`` (a scale it cannot take) or a logit that does not fit a
scratchpad element (where ``VectorMachine`` raises).
"""

import math

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.numerics import ACT_BITS, ROPE_FRAC, SCALE_BITS

from .arith import check_integers, divisors
from .attention import AttentionHead
from .kv_cache import KvCache
from .linear import TernaryLinear
from .scalar_unit import register_layout
from .sequencer import MATRICES, matrix_index
from .token_table import TokenTable
from .vector_core import Program, VectorCore
from .vector_isa import ELEMENT_BITS, Call, ScalarKind, ScalarOp, VectorOp
from .vector_lane import fits


ROPE_BITS = ROPE_FRAC + 2      # a Q1.14 cos or sin entry, signed (±1 included)


class Job(enum.Enum, shape=3):
    TRACE = 0
    MATMUL = 1
    CACHE = 2
    ATTEND = 3
    EMBED = 4
    LM_HEAD = 5
    ROPE = 6


class VectorEngine(wiring.Component):
    """``program`` (a :class:`~hw.vector_core.Program` of ``model``'s token programs) on a core of
    ``lanes`` lanes, its matmuls on a ``rows`` × ``simd`` array over ``model``'s matrices, its
    attention (if it calls for it) on an attention head of ``attention_lanes`` lanes, its LM head
    (if it calls for it) on a token table of ``head_lanes`` lanes.

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
    head_lanes : int
        Products the LM head makes a cycle (divides the hidden size).
    memory, registers : dict
        The scratchpad's contents and the registers' values after configuration (the core's).
    """

    def __init__(self, model, program: Program, *, rows: int, simd: int, lanes: int, attention_lanes: int = 1,
                 head_lanes: int = 1, memory=None, registers=None):
        cfg = model.config
        d, hidden = cfg.dim_per_head, cfg.hidden_size
        check_integers((("attention_lanes", attention_lanes, 1, d), ("head_lanes", head_lanes, 1, hidden)))
        for name, value, whole, what in (("attention_lanes", attention_lanes, d, "head size"),
                                         ("head_lanes", head_lanes, hidden, "hidden size")):
            if whole % value:
                raise ValueError(f"{name} must divide the {what} {whole}, not {value}; "
                                 f"{divisors(whole)} would")
        matrices = [getattr(layer, name).codes for layer in model.layers for name in MATRICES]
        self._model, self._program = model, program
        # per kind of job that reads codes: the beat's width, and the elements read a cycle into
        # it (the largest part of a scratchpad row that fits the beat)
        self._beats = {kind: (width, math.gcd(lanes, width)) for kind, width in (
            (Job.MATMUL, simd), (Job.CACHE, attention_lanes), (Job.ATTEND, attention_lanes),
            (Job.LM_HEAD, head_lanes))}
        # the results written a cycle: the attention head's sums and the embedding's codes a part
        # of a results-memory row at once (the largest that divides both the row and the unit's beat)
        # one token table serves the embedding and the LM head where the model ties them
        tied = {"embed", "lm_head"} <= {call.kind for call in program.calls} and model.lm_head is model.embed
        self._parts = {Job.ATTEND: math.gcd(lanes, attention_lanes),
                       Job.EMBED: math.gcd(lanes, head_lanes if tied else hidden)}
        if program.results:             # a tile's products land a part of a results row a cycle
            self._parts[Job.MATMUL] = math.gcd(lanes, rows)
        jobs = [self._job(call, program.number) for call in program.calls]
        # an attend call's queries (a layer's heads, in flight together), their scale registers
        self._slots = max([1] + [len(job.get("reads", ())) for job in jobs])
        for job in jobs:
            job["count"] = job.get("count", 1)
            for key in ("reads", "writes"):
                job[key] = job.get(key, []) + [0] * (self._slots - len(job.get(key, [])))
        for call, job in zip(program.calls, jobs):
            if job["kind"] in self._beats and job["x"] % self._beats[job["kind"]][1]:
                raise ValueError(f"a {call.kind} call reads x at {job['x']}, where it must start on a "
                                 f"multiple of {self._beats[job['kind']][1]} (its codes are read that many "
                                 "a cycle)")
            if job["kind"] in self._parts and job["dst"] % self._parts[job["kind"]]:
                raise ValueError(f"a {call.kind} call writes at {job['dst']}, where it must start on a "
                                 f"multiple of {self._parts[job['kind']]} (its results are written that "
                                 "many a cycle)")
            # where results land: the matmul's (with a results memory), the attention sums' and
            # the embedding's codes (always) in the results memory, a part of a row a cycle
            lands = job["kind"] in self._parts or job["kind"] is Job.MATMUL and program.results
            if lands and not program.depth <= job["dst"] < program.depth + program.results:
                raise ValueError(f"a {call.kind} call writes at {job['dst']}, outside the results memory "
                                 f"({program.depth} on, {program.results} elements), where its results land")
            if not program.results:     # nowhere to land while the core goes on: the call waits
                job["detach"] = 0
        # the array's activation buffer a copy of the codes' region, where every matmul reads one
        # region on a row boundary and a beat holds whole rows, a power of two of them
        regions = {job["x"] for job in jobs if job["kind"] is Job.MATMUL}
        per_beat = simd // lanes
        self._copied = None         # the codes' region the buffer copies
        if (len(regions) == 1 and not simd % lanes and not per_beat & (per_beat - 1)
                and not min(regions) % lanes):
            self._copied = min(regions)
        self._linear = TernaryLinear(matrices, rows=rows, simd=simd,
                                     x_part=lanes if self._copied is not None else 0,
                                     drain=self._parts.get(Job.MATMUL, 1))
        self._mark_loaded(program.ops, jobs)
        self._jobs = jobs
        self._call_index = {call: k for k, call in enumerate(program.calls)}    # (a token's calls are alike)
        kinds = {job["kind"] for job in jobs}
        context = cfg.max_position_embeddings
        self._attention = None
        if kinds & {Job.CACHE, Job.ATTEND}:
            # its row scale on the scalar unit's ScaleUnit, idle while the core waits for the call
            self._attention = AttentionHead(head_dim=d, lanes=attention_lanes,
                                            out_lanes=self._parts[Job.ATTEND],
                                            max_positions=context, shared_scale=True)
            if self._attention.out_bits > ELEMENT_BITS:
                raise ValueError(f"an attention head's sums take {self._attention.out_bits} bits over "
                                 f"{context} positions, more than a scratchpad element's {ELEMENT_BITS}")
        self._core = VectorCore(program, lanes=lanes, memory=memory, registers=registers,
                                lend_bits=self._attention.p_sum_bits if self._attention else None)
        # the token tables: (embedding, LM head)
        embeds, heads = Job.EMBED in kinds, Job.LM_HEAD in kinds
        part = self._parts[Job.EMBED]
        if tied:
            table = TokenTable(model.embed, lanes=head_lanes, embedding_lanes=part)
            self._tables = (table, table)
        else:
            self._tables = (TokenTable(model.embed, lanes=part, lm_head=False) if embeds else None,
                            TokenTable(model.lm_head, lanes=head_lanes, embedding=False) if heads else None)
        depth = program.depth
        self._job_layout = data.StructLayout({
            "kind": Job, "matrix": range(len(MATRICES) * len(model.layers)), "x": range(depth),
            "n": range(depth + 1), "dst": range(depth), "layer": range(len(model.layers)), "value": 1,
            "kv_head": range(cfg.num_key_value_heads), "count": range(self._slots + 1),
            "reads": data.ArrayLayout(range(program.registers), self._slots),
            "writes": data.ArrayLayout(range(program.registers), self._slots), "loaded": 1, "detach": 1})
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1), "error": Out(1),
            "token": In(range(cfg.vocab_size)), "position": In(range(context)),
            "access": In(data.StructLayout({"addr": range(depth), "data": signed(ELEMENT_BITS), "write": 1})),
            "access_data": Out(signed(ELEMENT_BITS)),
            "register": In(data.StructLayout({"addr": range(program.registers), "data": register_layout(),
                                              "write": 1})),
            "register_data": Out(register_layout()),
        })

    @staticmethod
    def _job(call, number: dict) -> dict:
        """A call's entry in the job table."""
        if call.kind == "embed":
            return {"kind": Job.EMBED, "dst": call.args[0], "writes": [number[call.writes[0]]]}
        if call.kind == "rope":
            return {"kind": Job.ROPE, "dst": call.args[0]}
        if call.kind not in ("matmul", "cache", "attend", "lm_head"):
            return {"kind": Job.TRACE}
        (x, n), = call.memory
        if call.kind == "matmul":
            layer, matrix, dst = call.args
            return {"kind": Job.MATMUL, "matrix": matrix_index(layer, matrix), "x": x, "n": n, "dst": dst,
                    "detach": int(call.detach)}
        if call.kind == "lm_head":
            return {"kind": Job.LM_HEAD, "x": x, "n": n, "dst": call.args[0]}
        if call.kind == "cache":
            layer, part, kv_head = call.args
            return {"kind": Job.CACHE, "layer": layer, "value": int(part == "v"), "kv_head": kv_head, "x": x,
                    "n": n, "reads": [number[call.reads[0]]]}
        layer, kv_head, dst = call.args
        return {"kind": Job.ATTEND, "layer": layer, "kv_head": kv_head, "x": x, "n": n, "dst": dst,
                "count": len(call.reads), "reads": [number[name] for name in call.reads],
                "writes": [number[name] for name in call.writes]}

    def _mark_loaded(self, ops, jobs) -> None:
        """Mark each matmul whose codes are already in the array's activation buffer: every one
        where the buffer copies their region; else where the last matmul read the same region
        and nothing has written into it since (q, k and v share their codes, as do gate and up)."""
        if self._copied is not None:
            for job in jobs:
                if job["kind"] is Job.MATMUL:
                    job["loaded"] = 1
            return
        calls = iter(jobs)
        loaded = None                   # the region (x, n) in the activation buffer
        for op in ops:
            job = next(calls) if isinstance(op, Call) else None
            if job is not None and job["kind"] is Job.MATMUL:
                job["loaded"] = int(loaded == (job["x"], job["n"]))
                loaded = (job["x"], job["n"])
            if loaded is not None and any(written.start < loaded[0] + loaded[1] and loaded[0] < written.stop
                                          for written in self._writes(op)):
                loaded = None

    def _writes(self, op) -> list:
        """The scratchpad elements an instruction writes, as ranges."""
        if isinstance(op, VectorOp):
            return [range(op.dst, op.dst + op.n)] if op.dst is not None else []
        if isinstance(op, ScalarOp):
            return [range(op.address, op.address + 1)] if op.kind is ScalarKind.STORE else []
        cfg = self._model.config
        if op.kind == "matmul":
            layer, matrix, dst = op.args
            return [range(dst, dst + getattr(self._model.layers[layer], matrix).codes.shape[0])]
        n = {"attend": cfg.dim_per_head, "rope": cfg.dim_per_head, "embed": cfg.hidden_size,
             "lm_head": cfg.vocab_size}.get(op.kind)
        return [range(op.args[-1], op.args[-1] + n)] if n else []

    linear = property(lambda self: self._linear)
    core = property(lambda self: self._core)

    def cycles(self, position: int = 0) -> int:
        """Clock edges from ``start`` to ``done`` of a run at ``position``, for a program that
        runs without error: the core's timeline with each call's :meth:`call_cycles`."""
        return self._core.timeline(self._program.ops, self._core.lanes,
                                   lambda call: self.call_cycles(call, position))

    def call_cycles(self, call, position: int = 0):
        """Cycles from a call's transfer to the core's ``resume``; for a detached matmul, that, the
        cycles from its transfer until the engine takes the next call (its products landed) and
        those to each product's landing (a pass may follow it).
        The job read (2); for a call that reads codes (but a matmul whose codes the array's buffer
        holds), its scale register read (1) and the codes, a beat at a time (a part of a scratchpad
        row a cycle, the last part's capture, and a cycle to hand the beat on, which reads the next
        beat's first part); then the matrix product's cycles, the cache entry's scale, the
        attention head's cycles and its ``d`` sums (a row part a cycle), or the LM head's cycles;
        or the token offered (2) and the embedding row's; or RoPE's rows read and written (``d``
        and 2)."""
        job = self._jobs[self._call_index[call]]
        kind = job["kind"]
        if kind is Job.TRACE:
            return 2
        if kind is Job.EMBED:
            return 4 + self._tables[0].row_cycles()
        if kind is Job.ROPE:
            return 4 + self._model.config.dim_per_head
        n = job["n"] // job["count"] if kind is Job.ATTEND else job["n"]      # (an attend call's first query)
        width, chunk = self._beats[kind]
        load = sum(-(-min(width, n - first) // chunk) + 1 for first in range(0, n, width)) + 1
        if kind is Job.MATMUL:
            started = 3 if job.get("loaded") else 4 + load        # the start taken
            if job.get("detach"):
                return (started, started + self._linear.cycles(job["matrix"]),
                        [started + cycle for cycle in self._linear.result_cycles(job["matrix"])])
            return started + 1 + self._linear.cycles(job["matrix"])
        if kind is Job.CACHE:
            return 5 + load
        if kind is Job.ATTEND:    # the later queries every period, their beats a beat's reads and one apart
            attention, count = self._attention, job["count"]
            period = attention.period_of(position + 1, attention.words, attention.lanes, attention.out_beats,
                                         intake=(attention.words - 1) * (-(-width // chunk) + 1))
            return (2 + count + load + attention.cycles(position + 1) + n // self._parts[Job.ATTEND]
                    + (count - 1) * period)
        return 4 + load + self._tables[1].logit_cycles()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        m.submodules.linear = linear = self._linear
        cfg = self._model.config
        served_error = Signal()             # the attention head's invalid, or a logit too wide
        m.d.comb += [core.start.eq(self.start), self.busy.eq(core.busy), self.done.eq(core.done),
                     self.error.eq(core.error | served_error), self.register_data.eq(core.register_data),
                     self.access_data.eq(core.access_data)]
        with m.If(self.start):
            m.d.sync += served_error.eq(0)

        layout = self._job_layout
        m.submodules.jobs = jobs = Memory(shape=layout.size, depth=max(len(self._jobs), 1), init=[
            layout.const(job).as_value().value for job in self._jobs])
        job_read = jobs.read_port()
        job = Signal(layout)
        m.d.comb += job_read.addr.eq(core.call.payload)

        # the scratchpad's and the registers' ports: the caller's while the core is idle, the
        # server's during a call (any state but IDLE)
        serving = Signal()
        port, register = core.access, core.register
        with m.If(~serving):
            m.d.comb += [port.addr.eq(self.access.addr), port.data.eq(self.access.data),
                         port.write.eq(self.access.write), register.eq(self.register)]

        attention = self._attention
        scales = None
        fetched = Signal(range(self._slots + 1))      # the call's scale registers read so far
        outs = Signal(range(self._slots + 1))         # an attend call's queries whose sums have left
        if attention is not None:
            m.submodules.cache = cache = KvCache(
                layers=len(self._model.layers), kv_heads=cfg.num_key_value_heads, head_dim=cfg.dim_per_head,
                positions=cfg.max_position_embeddings, lanes=attention.lanes)
            m.submodules.attention = attention
            for name in ("keys", "values", "key_scales", "value_scales"):
                wiring.connect(m, getattr(attention, name), getattr(cache, name))
            wiring.connect(m, core.lent_scale, attention.scale_unit)
            scale_layout = attention.q_scale.shape()
            # the call's scale registers (its queries', or the cache entry's); a query's until the
            # head starts weighing it (AttentionHead.weights_start), then the next one's
            scales = Signal(data.ArrayLayout(scale_layout, self._slots))
            # the query scored (the number the head has started weighing), the one weighed and the
            # one summed: each reads its own kv head's cache (the call's first, then one a group)
            weighed = Signal(range(self._slots + 1))
            weighing, summing = Signal(range(self._slots + 1)), Signal(range(self._slots + 1))
            with m.If(~serving):
                m.d.sync += weighed.eq(0)
            with m.Elif(attention.weights_start):
                m.d.sync += [weighed.eq(weighed + 1), weighing.eq(weighed)]
            with m.If(attention.values_start):
                m.d.sync += summing.eq(weighing)
            group = cfg.num_attention_heads // cfg.num_key_value_heads
            for query, head in ((weighed, cache.read_head), (weighing, cache.value_scales_head),
                                (summing, cache.values_head)):
                with m.Switch(query):
                    for k in range(self._slots):
                        with m.Case(k):
                            m.d.comb += head.eq(job.kv_head + k // group)
            coef = self._model.score_coef
            m.d.comb += [attention.q_scale.eq(scales[weighed]),
                         attention.score_coef.eq(scale_layout.const({"mant": int(coef[0]),
                                                                     "exp": int(coef[1])})),
                         attention.length.eq(self.position + 1),
                         cache.write_layer.eq(job.layer), cache.write_head.eq(job.kv_head),
                         cache.write_position.eq(self.position), cache.read_layer.eq(job.layer)]
            for stream_ in (cache.k_scale, cache.v_scale):
                m.d.comb += [stream_.payload.mant.eq(scales[0].mant), stream_.payload.exp.eq(scales[0].exp)]
        d = cfg.dim_per_head
        rope = rope_read = None
        if any(job["kind"] is Job.ROPE for job in self._jobs):     # a position's cos row, then its sin row
            rows = [int(v) for position in range(cfg.max_position_embeddings)
                    for table in (self._model.rope_cos, self._model.rope_sin) for v in table[position]]
            m.submodules.rope = rope = Memory(shape=signed(ROPE_BITS), depth=len(rows), init=rows)
            rope_read = rope.read_port()
        embedding, lm_head = self._tables
        if embedding is not None:
            m.submodules.embedding = embedding
        if lm_head is not None and lm_head is not embedding:
            m.submodules.lm_head = lm_head

        # where a beat of codes goes: (kind, its stream (CACHE: k's and v's), whether it has a last)
        sinks = [] if self._copied is not None else [(Job.MATMUL, linear.x, True)]
        if self._copied is not None:
            # every scratchpad write into the codes' region, into the array's buffer a cycle later
            # (a row of the scratchpad is a part of a beat)
            copy, per_beat = linear.x_copy, linear.simd // self._core.lanes     # a power of two
            first, count = self._copied // self._core.lanes, linear.x_words * per_beat
            row = Signal(range(count))
            bits = per_beat.bit_length() - 1
            m.d.comb += row.eq(core.written.row - first)
            m.d.sync += [copy.word.eq(row >> bits), copy.part.eq(row[:bits] if bits else 0),
                         copy.mask.eq(Mux((core.written.row >= first) & (core.written.row < first + count),
                                          core.written.mask, 0))]
            m.d.sync += [copy.data[k].eq(core.written.data[k][:ACT_BITS]) for k in range(self._core.lanes)]
        if attention is not None:
            sinks += [(Job.ATTEND, attention.q, False), (Job.CACHE, (cache.k, cache.v), True)]
        if lm_head is not None:
            sinks.append((Job.LM_HEAD, lm_head.x, True))

        depth = self._program.depth
        beats = {kind: self._beats[kind] for kind, _, _ in sinks}
        width = max((w for w, _ in beats.values()), default=1)
        lanes = self._core.lanes
        beat_width = Signal(range(width + 1))  # this job's beat and the elements read a cycle into it
        step = Signal(range(width + 1))
        with m.Switch(job.kind):
            for kind, (w, chunk) in beats.items():
                with m.Case(kind):
                    m.d.comb += [beat_width.eq(w), step.eq(chunk)]
        index = Signal(range(depth + width + 1))   # x elements read so far
        issued = Signal(range(width + 1))      # elements issued for the beat being packed
        captured = Signal(range(width + 1))    # elements in it
        reading = Signal()                     # a read issued the cycle before: its row is here
        read_index = Signal.like(index)        # the first element it reads
        read_lane = Signal(range(lanes))       # that element's place in its row
        beat = Signal(data.ArrayLayout(signed(ACT_BITS), width))
        written = Signal(range(depth + 1))
        landing = Signal()                  # a detached matmul's products landing
        if self._program.results:           # a pass that follows one reads what has landed (all, else)
            m.d.comb += core.landed.eq(Mux(landing, written, self._program.results))
        last = index >= job.n

        def capture(beat_width, chunk):
            """The row read the cycle before into the beat: its ``chunk`` elements from read_lane
            into the beat from ``captured`` on (those past x's end as 0)."""
            row = core.access_row
            for slot in range(beat_width // chunk):
                with m.If(captured == slot * chunk):
                    for t in range(chunk):
                        with m.Switch(read_lane // chunk if chunk < lanes else 0):
                            for place in range(lanes // chunk):
                                with m.Case(place):
                                    code = row[place * chunk + t][:ACT_BITS].as_signed()
                                    inside = read_index + t < job.n
                                    m.d.sync += beat[slot * chunk + t].eq(Mux(inside, code, 0))
            m.d.sync += captured.eq(captured + chunk)

        def read(issue):
            """The next part of x read from the scratchpad where ``issue`` is high (it arrives, and is
            captured, the cycle after)."""
            m.d.comb += port.addr.eq(job.x + index)
            m.d.sync += [reading.eq(issue), read_index.eq(index), read_lane.eq((job.x + index) % lanes)]
            with m.If(issue):
                m.d.sync += [index.eq(index + step), issued.eq(issued + step)]

        def write_out(valid, value):
            """A served result into the scratchpad, from dst on, one a cycle."""
            m.d.comb += [port.addr.eq(job.dst + written), port.data.eq(value), port.write.eq(valid)]
            with m.If(valid):
                m.d.sync += written.eq(written + 1)

        def land(valid, values, mask=None):
            """Served results into the results memory, from dst on: ``values``, a part of a row
            (aligned to its size), a cycle (those of ``mask``, else all)."""
            part, results = len(values), core.results
            address = job.dst - self._program.depth + written
            m.d.comb += results.addr.eq(address)
            m.d.comb += [results.row[k].eq(values[k % part]) for k in range(lanes)]
            with m.Switch(address % lanes // part):
                for place in range(lanes // part):
                    with m.Case(place):
                        m.d.comb += results.mask.eq(Mux(valid, (((1 << part) - 1) if mask is None else mask)
                                                        << (place * part), 0))
            with m.If(valid):
                m.d.sync += written.eq(written + part)

        with m.FSM() as fsm:
            m.d.comb += serving.eq(~fsm.ongoing("IDLE"))
            with m.State("IDLE"):
                m.d.comb += core.call.ready.eq(1)
                with m.If(core.call.valid):
                    m.next = "JOB"
            with m.State("JOB"):               # the call's job, read from its table
                m.d.sync += [job.eq(job_read.data), index.eq(0), issued.eq(0), captured.eq(0), reading.eq(0),
                             beat.eq(0), written.eq(0), fetched.eq(0), outs.eq(0)]
                m.next = "CHECK"
            with m.State("CHECK"):             # its first scale register read
                m.d.comb += register.addr.eq(job.reads[0])
                with m.If(job.kind == Job.TRACE):
                    m.d.comb += core.resume.eq(1)
                    m.next = "IDLE"
                if embedding is not None:
                    with m.Elif(job.kind == Job.EMBED):
                        m.next = "TOKEN"
                if rope is not None:
                    with m.Elif(job.kind == Job.ROPE):
                        m.next = "ROPE"
                with m.Elif(job.loaded):       # the codes are in the array's buffer
                    m.next = "START"
                with m.Else():
                    m.next = "SCALE"
            with m.State("SCALE"):             # its scale registers, one a cycle
                if scales is not None:
                    m.d.sync += [scales[fetched].mant.eq(core.register_data.value[:SCALE_BITS]),
                                 scales[fetched].exp.eq(core.register_data.exp)]
                if self._slots > 1:
                    m.d.comb += register.addr.eq(job.reads[fetched + 1])
                m.d.sync += fetched.eq(fetched + 1)
                with m.If(fetched + 1 >= job.count):
                    m.next = "LOAD"
            with m.State("LOAD"):
                # a beat's x elements read a part of a row a cycle (it arrives the cycle after),
                # the last beat's missing lanes left at zero; the last part's capture ends it
                issue = Signal()
                m.d.comb += issue.eq((issued < beat_width) & (index < job.n))
                read(issue)
                with m.If(reading):
                    with m.Switch(job.kind):
                        for kind, (w, chunk) in beats.items():
                            with m.Case(kind):
                                capture(w, chunk)
                with m.If(~issue):
                    m.next = "BEAT"
            with m.State("BEAT"):              # the beat to the array, the attention head, cache or LM head
                taken = Signal()
                with m.Switch(job.kind):
                    for kind, sink, has_last in sinks:
                        w = beats[kind][0]
                        with m.Case(kind):
                            for part, stream_ in enumerate(sink if isinstance(sink, tuple) else (sink,)):
                                with m.If(job.value == part if isinstance(sink, tuple) else 1):
                                    payload = stream_.payload.data if has_last else stream_.payload
                                    m.d.comb += [payload.eq(beat[:w]), stream_.valid.eq(1),
                                                 taken.eq(stream_.ready)]
                                    if has_last:
                                        m.d.comb += stream_.payload.last.eq(last)
                with m.If(taken):
                    m.d.sync += [beat.eq(0), issued.eq(0), captured.eq(0)]
                    with m.If(~last):          # the next beat's first part read at once
                        read(1)
                        m.d.sync += issued.eq(step)
                        m.next = "LOAD"
                    with m.Else():
                        with m.Switch(job.kind):
                            for kind, then in ((Job.MATMUL, "START"), (Job.ATTEND, "SUMS"),
                                               (Job.CACHE, "ENTRY_SCALE"), (Job.LM_HEAD, "LOGITS")):
                                if kind in beats:
                                    with m.Case(kind):
                                        m.next = then
            with m.State("START"):
                m.d.comb += [linear.start.valid.eq(1), linear.start.payload.eq(job.matrix)]
                with m.If(linear.start.ready):
                    m.d.comb += core.resume.eq(job.detach)     # a detached call: the core goes on
                    m.next = "RESULTS"
            with m.State("RESULTS"):
                m.d.comb += [linear.o.ready.eq(1), landing.eq(job.detach)]
                if self._program.results:      # into the results memory, whatever the core is doing
                    land(linear.o.valid, list(linear.o.payload.data), linear.o.payload.mask)
                else:
                    write_out(linear.o.valid, linear.o.payload.data[0])
                with m.If(linear.o.valid & linear.o.payload.last):
                    with m.If(job.detach):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "RESUME"
            if attention is not None:
                with m.State("ENTRY_SCALE"):   # the cache entry's scale, after its codes
                    m.d.comb += [cache.k_scale.valid.eq(~job.value),
                                 cache.v_scale.valid.eq(job.value)]
                    m.next = "RESUME"
                with m.State("SUMS"):          # until the last query's sums have left
                    with m.If((outs == job.count) | attention.o.valid & attention.o.payload.last
                              & (outs + 1 == job.count)):
                        m.next = "RESUME"
            if embedding is not None:
                with m.State("TOKEN"):
                    m.d.comb += [embedding.token.valid.eq(1),
                                 embedding.token.payload.eq(self.token)]
                    with m.If(embedding.token.ready):
                        m.next = "ROW"
                with m.State("ROW"):           # the row's codes as they leave the table
                    row = embedding.embedding
                    m.d.comb += [row.ready.eq(1), register.addr.eq(job.writes[0]),
                                 register.data.value.eq(row.payload.scale.mant),
                                 register.write.eq(row.valid & row.payload.last)]
                    land(row.valid, list(row.payload.data))
                    with m.If(row.valid & row.payload.last):
                        m.next = "RESUME"
            if lm_head is not None:
                with m.State("LOGITS"):        # the logits as they leave the LM head
                    logits = lm_head.logits
                    m.d.comb += logits.ready.eq(1)
                    write_out(logits.valid, logits.payload.logit)
                    with m.If(logits.valid & ~fits(logits.payload.logit, ELEMENT_BITS)):
                        m.d.sync += served_error.eq(1)
                    with m.If(logits.valid & logits.payload.last):
                        m.next = "RESUME"
            if rope is not None:
                with m.State("ROPE"):          # the position's cos and sin rows, an element a cycle
                    m.d.comb += rope_read.addr.eq(self.position * d + index)
                    m.d.sync += [index.eq(index + 1), reading.eq(index < d)]
                    write_out(reading, rope_read.data)
                    with m.If(written == d - 1):
                        m.next = "RESUME"
            with m.State("RESUME"):
                m.d.comb += core.resume.eq(1)
                m.next = "IDLE"

        if attention is not None:
            # an attend call's value sums as they leave, while its later queries are still read and
            # handed on: each query's into the results memory a row part a cycle, then its row scale
            # into its register
            o = attention.o.payload
            with m.If(serving & (job.kind == Job.ATTEND)):
                m.d.comb += attention.o.ready.eq(1)
                land(attention.o.valid, list(o.data))
                with m.If(attention.o.valid & o.invalid):
                    m.d.sync += served_error.eq(1)
                with m.If(attention.o.valid & o.last):
                    m.d.comb += [register.addr.eq(job.writes[outs]), register.data.value.eq(o.scale.mant),
                                 register.data.exp.eq(o.scale.exp), register.write.eq(1)]
                    m.d.sync += outs.eq(outs + 1)
        return m
