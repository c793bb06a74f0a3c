"""``tritium bench breakdown``: where a board's logic goes. The board's SoC (its shipped model and
engine sizes, its LUT-RAM buffers) synthesized by Yosys with its hierarchy kept (the board flow's
script, ``-noflatten``), LUT4 equivalents per engine block, and the **fixed cost**: the SoC minus
the ternary array and its weight memory (``engine.linear``: the array, the weight ROM's read mux,
the activation buffer and the matmul's control), the logic that does not grow with the array.
Writes docs/benchmarks.md (section ``breakdown``).

LUT4 equivalents count what nextpnr's placed design counts: an ECP5 LUT4 1, a CCU2C carry 2 and a
TRELLIS_DPR16X4 LUT RAM 6 (two RAM slices and the write port's, measured with ``--pack-only``);
an iCE40 SB_LUT4 1 (an LC also holds a flip-flop and a carry, so LCs ≥ LUT4s). Before packing, so a
few percent from the placed design's count.

``--engine vector`` measures the same SoC on the engine of the shared vector unit
(:class:`~hw.vector_generator.VectorGenerator` at the board's sizes; section ``breakdown-vector``):
its blocks are the VectorEngine's and the generator's own (the sampler), its array
``engine.engine.linear``.
"""

import json
import tempfile
from pathlib import Path

from amaranth.back import verilog

from fpga.boards import BOARDS
from fpga.flow.build import soc_script
from fpga.flow.synth import run_yosys
from model import paths

from . import provenance, write_section

BOARD_NAMES = ("ulx3s-85f", "ulx3s-45f", "icebreaker")
LUT_WEIGHTS = {"ecp5": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6}, "ice40": {"SB_LUT4": 1}}
TOP = "top.soc"                        # the SoC's module name, as a board's design names it
ARRAY = "linear"                       # the ternary array and its weight memory, in the engine
TARGETS = {"ecp5": 8_000, "ice40": 4_000}     # issue 18: fixed cost at 8 lanes (ECP5), 1 lane (UP5K)
SMALLEST = 0.01                        # a block below this share of the total is listed with the others


def module_luts(stat: dict, family: str) -> dict:
    """LUT4 equivalents of each module's own cells, from Yosys' ``stat -json``."""
    weights = LUT_WEIGHTS[family]
    return {name.lstrip("\\"): sum(n * weights.get(cell, 0)
                                   for cell, n in module.get("num_cells_by_type", {}).items())
            for name, module in stat["modules"].items()}


def subtree(luts: dict, name: str) -> int:
    """LUT4 equivalents of module ``name`` and every module below it (Amaranth names a submodule
    ``parent.child``)."""
    return sum(n for module, n in luts.items() if module == name or module.startswith(name + "."))


def measure(board, status=None, *, model_dir=None, engine: dict | None = None, vector: bool = False) -> dict:
    """The breakdown of ``board``'s SoC (its shipped model unless ``model_dir``; ``engine``
    overrides engine parameters; ``vector``: on the VectorGenerator): LUT4 equivalents per engine
    block (each with its submodules), the engine's own glue, the SoC outside the engine, the total
    and the fixed cost; ``modules``: each module's own LUT4 equivalents."""
    from hw.soc import Soc

    board_params = board.vector_engine_parameters() if vector else board.engine_parameters()
    params = {**board_params, **(engine or {})}
    soc = Soc(board.load_model(model_dir), clock_hz=board.clock_mhz * 1e6, baud=board.baud,
              engine=params)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if status:
            status(f"{board.name}: elaborating")
        (work / "soc.v").write_text(verilog.convert(soc, name=TOP, emit_src=False))
        if status:
            status(f"{board.name}: synthesizing (Yosys, hierarchy kept)")
        run_yosys(soc_script(board, source="soc.v", top=TOP, flatten="-noflatten")
                  + "tee -q -o stat.json stat -json\n", work)
        stat = json.loads((work / "stat.json").read_text())
    luts = module_luts(stat, board.family)
    engine = f"{TOP}.engine"
    # the blocks: the engine's submodules (the vector generator's and its VectorEngine's)
    parents = [engine, f"{engine}.engine"] if vector else [engine]
    rows = {}
    for parent in parents:
        for block in sorted({module[len(parent) + 1:].split(".")[0] for module in luts
                             if module.startswith(parent + ".")}):
            if f"{parent}.{block}" not in parents:
                rows[f"{parent[len(engine) + 1:]}.{block}".lstrip(".")] = subtree(luts, f"{parent}.{block}")
    total = subtree(luts, TOP)
    rows = dict(sorted(((block, n) for block, n in rows.items() if n), key=lambda item: -item[1]))
    sizes = {name: params[name] for name in board.engine.as_dict()}
    array = subtree(luts, f"{parents[-1]}.{ARRAY}")
    return {"board": board.name, "family": board.family, "sizes": sizes, "vector": vector,
            "blocks": rows, "engine glue": sum(luts.get(parent, 0) for parent in parents),
            "outside the engine": total - subtree(luts, engine), "total": total,
            "array": array, "fixed": total - array, "modules": luts}


def shares(result: dict) -> list[tuple[str, int]]:
    """(part, LUT4 eq.) largest first: each engine block of at least :data:`SMALLEST` of the
    total, the engine's glue, the SoC outside it, and the smaller blocks together."""
    parts = {"engine (its own glue)": result["engine glue"],
             "SoC outside the engine": result["outside the engine"]}
    small = [block for block, n in result["blocks"].items() if n < SMALLEST * result["total"]]
    parts.update({f"engine.{block}": n for block, n in result["blocks"].items() if block not in small})
    ordered = sorted(parts.items(), key=lambda item: -item[1])
    if small:
        ordered.append((f"{len(small)} smaller blocks ({', '.join(small)})",
                        sum(result["blocks"][block] for block in small)))
    return ordered


def sizes_text(sizes: dict) -> str:
    return (f"{sizes['rows']}×{sizes['simd']}, lanes {sizes['lanes']}/{sizes['attention_lanes']}/"
            f"{sizes['head_lanes']}")


def markdown(results: list[dict]) -> str:
    vector = any(r["vector"] for r in results)
    title = "## Where the logic goes"
    if vector:
        title += ": the engine on the shared vector unit (issue 18)"
    lines = [title, "",
             f"{provenance('tritium bench breakdown')}; yowasp yosys, the board flow's script with the "
             "hierarchy kept. LUT4 equivalents before packing (ECP5: LUT4 + 2 per CCU2C + 6 per "
             "DPR16X4; iCE40: SB_LUT4). **Fixed cost**: the SoC minus `engine.linear` (the ternary "
             "array, its weight ROM's read mux, the activation buffer and the matmul control). Target "
             f"(issue 18): ≤ {TARGETS['ecp5']:,} LUT4 on ECP5 at 8 vector lanes, "
             f"≤ {TARGETS['ice40']:,} LC on the UP5K at 1 lane."
             + (" The SoC with `VectorGenerator` (`tritium bench breakdown --engine vector`) at the board's "
                "sizes; its array is `engine.engine.linear`." if vector else ""), ""]
    for r in results:
        lines += [f"**{r['board']}** ({sizes_text(r['sizes'])}): {r['total']:,} in all, the array and its "
                  f"weights {r['array']:,}, **fixed cost {r['fixed']:,}** (target "
                  f"{TARGETS[r['family']]:,}: {r['fixed'] / TARGETS[r['family']]:.1f}×).", "",
                  "| block | LUT4 eq. | share |", "|---|---|---|"]
        for name, n in shares(r):
            lines.append(f"| {name} | {n:,} | {n / r['total']:.0%} |")
        lines.append("")
    return "\n".join(lines)


def bench_breakdown(board_names=None, docs: Path = paths.DOCS, status=None,
                    vector: bool = False) -> list[dict]:
    results = [measure(BOARDS[name], status, vector=vector) for name in (board_names or BOARD_NAMES)]
    write_section("breakdown-vector" if vector else "breakdown", markdown(results), docs / "benchmarks.md")
    return results


def table(results: list[dict]):
    """The console's table of :func:`bench_breakdown`'s results."""
    from rich.table import Table

    result = Table(title="LUT4 equivalents by block (before packing)")
    for column in ("board", "total", "array + weights", "fixed cost", "largest blocks"):
        result.add_column(column)
    for r in results:
        largest = ", ".join(f"{block} {n:,}" for block, n in list(r["blocks"].items())[:4])
        result.add_row(r["board"], f"{r['total']:,}", f"{r['array']:,}", f"{r['fixed']:,}", largest)
    return result
