"""``tritium bench vector``: what a token costs on the shared vector unit (issue 18), by step.

The shipped models run the benchmark prompt and its greedy continuation, the first positions, as
vector-unit programs
(``hw.vector_programs.ProgramModel``, bit for bit the integer model: ``--check`` compares every
position's logits); each pass is counted at :meth:`hw.vector_unit.VectorUnit.cycles` (the unit as
built: one pass at a time), each scalar operation at :meth:`hw.scalar_unit.ScalarUnit.cycles_of`,
and the whole program at :meth:`hw.vector_core.VectorCore.timeline` (the core as built: the
instructions in order, a pass going on while the scalar operations after it that do not need it
run). The ternary matmuls (the array's work) are not counted there; the whole token, matmuls
included, is counted on :class:`hw.vector_engine.VectorEngine` (:meth:`~hw.vector_engine.VectorEngine.cycles`:
the core's timeline with each call's cycles, both checked in simulation) at the board's sizes, with
attention and the LM head as vector-unit programs or on their units (:data:`VARIANTS`), beside
today's engine at the same sizes and positions (``fpga.perf.cycle_model``). Writes its section of
docs/benchmarks.md.
"""

import collections

import numpy as np

from model import paths

from . import provenance, write_section
from .boards import PROMPT

MODELS = ("ulx3s", "small")
# where the VectorEngine runs attention, the LM head and RoPE's tables: ProgramModel's units
VARIANTS = {"attention and LM head on the vector unit": False,
            "attention, LM head and RoPE's rows on their units (one program for every token)": True}
LANES = (1, 4, 8)
POSITIONS = 8          # the prompt's first positions (attention's cost grows with the position)


def overlapped_cycles(ops: list, lanes: int) -> int:
    """The same instructions on a timeline where a pass starts as soon as the unit's rows are
    free and its registers and elements are ready, and scalar operations run beside the passes in
    order: what a unit that overlaps independent passes would take (a schedule, not a built unit)."""
    from hw.scalar_unit import ScalarUnit
    from hw.vector_isa import BSource, ScalarKind, VectorOp
    from hw.vector_unit import VectorUnit
    rows_free = scalar_free = 0
    ready, written = {}, []             # register: when; (first, end, when) of written elements

    def elements_ready(address, n):
        return max((when for first, end, when in written[-64:] if address < end and first < address + n),
                   default=0)

    for op in ops:
        if isinstance(op, VectorOp):
            start = max([rows_free, elements_ready(op.a, op.n)] + [ready.get(r, 0) for r in op.registers]
                        + ([elements_ready(op.b, op.n)] if op.b_source is BSource.VECTOR else [])
                        + ([elements_ready(op.c, op.n)] if op.c is not None else []))
            rows_free = start + max(-(-(op.a % lanes + op.n) // lanes), 1)
            done = start + VectorUnit.op_cycles(lanes, op)
            if op.dst is not None:
                written.append((op.dst, op.dst + op.n, done))
            ready.update({name: done for _, name in op.reduce})
        else:
            start = max([scalar_free] + [ready.get(r, 0) for r in op.registers]
                        + ([elements_ready(op.address, 1)] if op.kind is ScalarKind.LOAD else []))
            scalar_free = start + ScalarUnit.cycles_of(op.kind)
            if op.result:
                ready[op.result] = scalar_free
            if op.kind is ScalarKind.STORE:
                written.append((op.address, op.address + 1, scalar_free))
    return max([rows_free, scalar_free, *ready.values()])


def measure(name: str, lanes_list=LANES, positions: int = POSITIONS) -> dict:
    """Per step (a pass's note up to its colon): passes and cycles a token at each lane count, and
    the scalar operations' cycles; means over the first ``positions`` of the prompt."""
    from hw.scalar_unit import ScalarUnit
    from fpga.boards.ulx3s import ENGINE_85F, ENGINE_SMALL
    from fpga.perf.cycle_model import mean_cycles
    from hw.vector_core import Program, VectorCore
    from hw.vector_engine import VectorEngine
    from hw.vector_isa import Call, VectorOp
    from hw.vector_programs import ProgramModel
    from hw.vector_unit import VectorUnit
    from model.integer import IntegerModel
    from model.tokenizer import encode_text, load_tokenizer

    model = IntegerModel.from_checkpoint(paths.MODELS / name)
    sizes = {"ulx3s": ENGINE_85F, "small": ENGINE_SMALL}[name]
    tokens = encode_text(load_tokenizer(paths.MODELS / name), PROMPT)
    tokens = (tokens + model.generate(tokens, max(1, positions - len(tokens))))[:positions]
    variants = {variant: ProgramModel(model, units) for variant, units in VARIANTS.items()}
    cache = model.new_cache()
    passes, cycles, scalar = collections.Counter(), collections.Counter(), collections.Counter()
    core = collections.Counter()        # lanes: cycles on the VectorCore as built
    engine = collections.Counter()      # (variant, lanes): a whole token on the VectorEngine
    runs, ops = {variant: p.machine.run for variant, p in variants.items()}, []
    engines = {}                        # (variant, lanes): a VectorEngine at the board's sizes

    def on_engine(variant, program):
        for lanes in lanes_list:
            if (variant, lanes) not in engines:
                program_model = variants[variant]
                engines[variant, lanes] = VectorEngine(
                    model, Program(program, registers=256, names=program_model.registers,
                                   **program_model.memories(lanes)),
                    rows=sizes.rows, simd=sizes.simd, lanes=lanes, attention_lanes=sizes.attention_lanes,
                    head_lanes=sizes.head_lanes)
            position, call_cycles = variants[variant].position, engines[variant, lanes].call_cycles
            engine[variant, lanes] += VectorCore.timeline(program, lanes,
                                                          lambda call: call_cycles(call, position))

    def counted(program, serve=None):
        counted_ops = [op for op in program if not isinstance(op, Call)]    # not the array's work, traces
        ops.extend(counted_ops)
        for lanes in lanes_list:
            core[lanes] += VectorCore.timeline(counted_ops, lanes)
        for op in counted_ops:
            if isinstance(op, VectorOp):
                step = (op.note or "other").split(":")[0]
                passes[step] += 1
                for lanes in lanes_list:
                    cycles[step, lanes] += VectorUnit.op_cycles(lanes, op)
            else:
                scalar[op.kind] += 1

    def hooked(variant):
        def run(program, serve=None):
            on_engine(variant, program)
            if variant == next(iter(VARIANTS)):
                counted(program)
            runs[variant](program, serve)
        return run

    for variant, program_model in variants.items():
        program_model.machine.run = hooked(variant)
    for position, token in enumerate(tokens):
        want, _ = model.step(int(token), cache)
        for variant, program_model in variants.items():
            logits, _ = program_model.step(int(token), position)
            if not np.array_equal(logits, want):
                raise AssertionError(f"{name}: the programs' logits ({variant}) differ from the integer "
                                     f"model's at position {position}")
    count = len(tokens)
    steps = sorted(passes, key=lambda s: -cycles[s, lanes_list[0]])
    return {"model": name, "positions": count, "lanes": list(lanes_list),
            "steps": [{"step": s, "passes": passes[s] / count,
                       "cycles": {lanes: cycles[s, lanes] / count for lanes in lanes_list}} for s in steps],
            "scalar_ops": sum(scalar.values()) / count,
            "scalar_cycles": sum(ScalarUnit.cycles_of(k) * n for k, n in scalar.items()) / count,
            "core": {lanes: core[lanes] / count for lanes in lanes_list},
            "sizes": sizes, "today": mean_cycles(model.config, sizes.as_dict(), range(count))["cycles"],
            "engine": {variant: {lanes: engine[variant, lanes] / count for lanes in lanes_list}
                       for variant in VARIANTS},
            "overlapped": {lanes: overlapped_cycles(ops, lanes) / count for lanes in lanes_list}}


def markdown(results: list[dict]) -> str:
    lines = ["## The shared vector unit: a token's passes (issue 18)", "",
             f"{provenance('tritium bench vector')}. Each shipped model's benchmark prompt and its greedy "
             "continuation, its first positions, run as vector-unit programs (`hw/vector_programs.py`, "
             "equal to the integer model's logits at every position); a pass at `VectorUnit.cycles` "
             "(one pass at a time, as built), a scalar operation at `ScalarUnit.cycles_of` (as built); "
             "the ternary matmuls are not counted. Means per token. The row *on the VectorCore* is the "
             "program run as `hw/vector_core.py` runs it (in order, a pass running while the scalar "
             "operations after it that do not need it run; `VectorCore.timeline`, checked in simulation). "
             "The last row puts the same instructions on a timeline where a pass "
             "starts once the unit's rows are free and its registers and elements are ready, the scalar "
             "operations running beside it: a schedule for a core that overlaps independent instructions, "
             "not a core that exists.", ""]
    for r in results:
        head = " | ".join(f"cycles, {lanes} lane{'s' if lanes > 1 else ''}" for lanes in r["lanes"])
        lines += [f"**{r['model']}** (positions 0–{r['positions'] - 1}):", "",
                  f"| step | passes | {head} |", "|---|---|" + "---|" * len(r["lanes"])]
        for s in r["steps"]:
            lines.append(f"| {s['step']} | {s['passes']:,.0f} | "
                         + " | ".join(f"{s['cycles'][lanes]:,.0f}" for lanes in r["lanes"]) + " |")
        totals = [sum(s["cycles"][lanes] for s in r["steps"]) for lanes in r["lanes"]]
        lines += [f"| **all passes** | {sum(s['passes'] for s in r['steps']):,.0f} | "
                  + " | ".join(f"**{t:,.0f}**" for t in totals) + " |",
                  f"| scalar operations | {r['scalar_ops']:,.0f} | "
                  + " | ".join(f"{r['scalar_cycles']:,.0f}" for _ in r["lanes"]) + " |",
                  "| **on the VectorCore as built** | | "
                  + " | ".join(f"**{r['core'][lanes]:,.0f}**" for lanes in r["lanes"]) + " |",
                  "| passes and scalar operations overlapped where the data allow | | "
                  + " | ".join(f"{r['overlapped'][lanes]:,.0f}" for lanes in r["lanes"]) + " |", ""]
        sizes = r["sizes"]
        lines += [f"A whole token of **{r['model']}**, matmuls included, at the board's array "
                  f"({sizes.rows}×{sizes.simd}), attention lanes ({sizes.attention_lanes}) and LM head "
                  f"lanes ({sizes.head_lanes}): "
                  f"today's engine (its {sizes.lanes} vector lanes) and the VectorEngine at each lane "
                  "count.", "",
                  f"| engine | {head} |", "|---|" + "---|" * len(r["lanes"]),
                  f"| today's engine (`fpga/perf/cycle_model.py`, {sizes.lanes} lanes) | "
                  + " | ".join(f"{r['today']:,.0f}" for _ in r["lanes"]) + " |"]
        for variant in VARIANTS:
            lines.append(f"| VectorEngine, {variant} | "
                         + " | ".join(f"{r['engine'][variant][lanes]:,.0f}" for lanes in r["lanes"]) + " |")
        lines.append("")
    return "\n".join(lines)


def bench_vector(docs=paths.DOCS, say=None) -> list[dict]:
    results = []
    for name in MODELS:
        if say:
            say(f"{name}: the programs over {POSITIONS} positions")
        results.append(measure(name))
    write_section("vector", markdown(results), docs / "benchmarks.md")
    return results


def table(results: list[dict]):
    from rich.table import Table

    result = Table(title="a token on the shared vector unit (core: no matmuls; engine: the whole token)")
    for column in ("model", "passes", *(f"core at {lanes}" for lanes in LANES), "today's engine",
                   *(f"engine at {lanes}, units" for lanes in LANES)):
        result.add_column(column)
    for r in results:
        result.add_row(r["model"], f"{sum(s['passes'] for s in r['steps']):,.0f}",
                       *(f"{r['core'][lanes]:,.0f}" for lanes in r["lanes"]), f"{r['today']:,.0f}",
                       *(f"{r['engine'][list(VARIANTS)[-1]][lanes]:,.0f}" for lanes in r["lanes"]))
    return result
