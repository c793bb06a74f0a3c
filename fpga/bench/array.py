"""``tritium bench array``: utilization measured in simulation, and LUTs/FFs/fmax from synthesis
and place-and-route on yowasp, for a sweep of TernaryArray sizes. Writes its section of
docs/benchmarks.md (between markers, so other benchmarks keep theirs) and a plot.
"""

import tempfile
from pathlib import Path

import numpy as np

from hw.ternary_array import TernaryArray
from model.integer import ternary_matmul
from model import paths
from model.numerics import acc_bits

from . import provenance, write_section

# (rows, cols, simd), (N, K, T): GEMM with T >= cols and GEMV (T = 1), K >= 512.
UTILIZATION_CASES = [
    ("GEMM", (4, 4, 8), (16, 512, 8)),
    ("GEMM", (4, 2, 16), (32, 1024, 6)),
    ("GEMV", (8, 1, 16), (64, 512, 1)),
    ("GEMV", (4, 1, 16), (128, 1024, 1)),
    ("GEMV on a 4-column array", (4, 4, 8), (16, 512, 1)),
]
SYNTH_SWEEP = {
    "ecp5-85f": [(2, 1, 8), (4, 1, 16), (8, 1, 16), (8, 2, 16)],
    "ice40-up5k": [(2, 1, 8), (4, 1, 8), (4, 1, 16)],
}
QUICK_SWEEP = {"ecp5-85f": [(2, 1, 8), (4, 1, 16)], "ice40-up5k": [(2, 1, 8)]}
TARGET_FMAX = {"ecp5-85f": 60.0, "ice40-up5k": 24.0}
TARGET_LUTS_PER_LANE = 30
TARGET_UTILIZATION = {"GEMM": 95.0, "GEMV": 90.0}
K_MAX = 1024


def measure_utilization(progress=None) -> list[dict]:
    from hw.testing import run_matmul

    rows = []
    for kind, (r, c, s), (n, k, t) in UTILIZATION_CASES:
        dut = TernaryArray(rows=r, cols=c, simd=s, k_max=K_MAX)
        rng = np.random.default_rng(0)
        w, x = rng.integers(-1, 2, (n, k)), rng.integers(-128, 128, (k, t))
        y, cycles = run_matmul(dut, w, x, seed=0)
        if not (y == ternary_matmul(w, x)).all():
            raise AssertionError(f"array {r}x{c}x{s} computed a wrong {n}x{k}x{t} product")
        rows.append(dict(kind=kind, array=(r, c, s), shape=(n, k, t), cycles=cycles,
                         formula=dut.cycles(n, k, t),
                         utilization=n * k * t / (dut.lanes * cycles)))
        if progress:
            progress()
    return rows


def measure_synthesis(sweep: dict, progress=None) -> list[dict]:
    from fpga.flow.synth import synthesize

    rows = []
    for family, sizes in sweep.items():
        for r, c, s in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                res = synthesize(TernaryArray, dict(rows=r, cols=c, simd=s, k_max=K_MAX), family,
                                 Path(tmp), freq_mhz=TARGET_FMAX[family])
            lanes = r * c * s
            rows.append(dict(family=family, array=(r, c, s), lanes=lanes, luts=res.luts,
                             ffs=res.ffs, luts_per_lane=res.luts / lanes, ffs_per_lane=res.ffs / lanes,
                             pnr_luts=res.pnr_luts, pnr_ffs=res.pnr_ffs, fmax=res.fmax_mhz,
                             seconds=res.seconds))
            if progress:
                progress()
    return rows


def plot(synth_rows: list[dict], path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lut, ax_fmax) = plt.subplots(1, 2, figsize=(10, 4))
    for family in sorted({r["family"] for r in synth_rows}):
        pts = [r for r in synth_rows if r["family"] == family]
        lanes = [r["lanes"] for r in pts]
        ax_lut.plot(lanes, [r["luts"] for r in pts], "o-", label=family)
        ax_fmax.plot(lanes, [r["fmax"] for r in pts], "o-", label=family)
        ax_fmax.axhline(TARGET_FMAX[family], ls=":", color=ax_fmax.lines[-1].get_color())
    ax_lut.set(xscale="log", yscale="log", xlabel="ternary lanes (rows·cols·simd)",
               ylabel="LUT4 equivalents (array alone)", title="Logic")
    ax_fmax.set(xscale="log", xlabel="ternary lanes", ylabel="post-route fmax (MHz)",
                title="fmax (dotted: target)")
    for ax in (ax_lut, ax_fmax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def markdown(util_rows, synth_rows, command: str) -> str:
    lines = [
        "## TernaryArray", "",
        f"{provenance(command)}; yowasp yosys + nextpnr.", "",
        "### Utilization (Amaranth simulation, cycle-accurate, no external stalls)", "",
        "useful MACs / (rows·cols·simd · cycles), cycles from the first beat in to the last result out,",
        "fill and drain included; every product checked against `model.integer.ternary_matmul`.", "",
        "| case | array r×c×s | N×K×T | cycles (sim) | cycles (formula) | utilization |",
        "|---|---|---|---|---|---|",
    ]
    for u in util_rows:
        lines.append(f"| {u['kind']} | {'×'.join(map(str, u['array']))} | {'×'.join(map(str, u['shape']))} "
                     f"| {u['cycles']} | {u['formula']} | {100 * u['utilization']:.1f}% |")
    lines += [
        "", "### Synthesis and place-and-route", "",
        f"k_max = {K_MAX} (accumulators of {acc_bits(K_MAX)} "
        "bits). LUT4 equivalents and FFs are the array alone (Yosys; ECP5 counts a CCU2C carry cell as 2 "
        "LUT4); the nextpnr totals include the one-pin scan chain that feeds the inputs "
        "(fpga/flow/synth.py). fmax is nextpnr's post-route estimate.", "",
        "| part | array r×c×s | lanes | LUT4 eq. | LUT4/lane | FF/lane | nextpnr LUT / FF or LC (with wrapper) | fmax MHz | target | time s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in synth_rows:
        lines.append(f"| {s['family']} | {'×'.join(map(str, s['array']))} | {s['lanes']} | {s['luts']} "
                     f"| {s['luts_per_lane']:.1f} | {s['ffs_per_lane']:.1f} | {pnr_cells(s)} "
                     f"| {s['fmax']:.1f} | {TARGET_FMAX[s['family']]:.0f} | {s['seconds']:.0f} |")
    lines += ["", "![LUTs and fmax vs lanes](bench-array.png)", "", "### Against the targets", ""]
    lines += target_summary(util_rows, synth_rows)
    return "\n".join(lines)


def pnr_cells(row) -> str:
    """nextpnr's LUT / FF totals (ECP5), or its logic cells (iCE40: a LUT and a FF each)."""
    if row["pnr_ffs"] is None:
        return f"{row['pnr_luts']} LC"
    return f"{row['pnr_luts']} / {row['pnr_ffs']}"


def target_summary(util_rows, synth_rows) -> list[str]:
    """One line per target: the measured extreme and which configurations miss it."""
    def extreme(rows, kind):
        return min(100 * u["utilization"] for u in rows if u["kind"] == kind)
    over = [s for s in synth_rows if s["luts_per_lane"] > TARGET_LUTS_PER_LANE]
    slow = [s for s in synth_rows if s["fmax"] < TARGET_FMAX[s["family"]]]

    def names(rows):
        return ", ".join(f"{s['family']} {'×'.join(map(str, s['array']))} ({s['luts_per_lane']:.1f})"
                         for s in rows)
    lines = [f"- Utilization, GEMM (T ≥ cols, K ≥ 512): lowest {extreme(util_rows, 'GEMM'):.1f}% "
             f"(target ≥ {TARGET_UTILIZATION['GEMM']:.0f}%).",
             f"- Utilization, GEMV (T = 1 on a one-column array, K ≥ 512): lowest "
             f"{extreme(util_rows, 'GEMV'):.1f}% (target ≥ {TARGET_UTILIZATION['GEMV']:.0f}%). A GEMV on a "
             "C-column array keeps one column of C busy, so decode uses cols = 1.",
             f"- LUT4 per lane ≤ {TARGET_LUTS_PER_LANE}: "
             + (f"met by all but {names(over)}: the per-row cost (accumulator, output register, "
                "row control) is shared by only simd lanes there." if over else "met by all.")]
    lines.append("- fmax: " + ("all configurations meet their part's target." if not slow else
                               "below target: " + ", ".join(f"{s['family']} {'×'.join(map(str, s['array']))} "
                                                            f"({s['fmax']:.1f} MHz)" for s in slow)))
    return lines + [""]


def bench_array(quick: bool = False, docs: Path = paths.DOCS) -> tuple[list, list]:
    from rich.progress import Progress

    sweep = QUICK_SWEEP if quick else SYNTH_SWEEP
    total = len(UTILIZATION_CASES) + sum(len(v) for v in sweep.values())
    with Progress() as progress:
        task = progress.add_task("bench array", total=total)
        util = measure_utilization(lambda: progress.advance(task))
        synth = measure_synthesis(sweep, lambda: progress.advance(task))
    command = "tritium bench array" + (" --quick" if quick else "")
    docs.mkdir(parents=True, exist_ok=True)
    plot(synth, docs / "bench-array.png")
    write_section("array", markdown(util, synth, command), docs / "benchmarks.md")
    return util, synth


def tables(util_rows: list[dict], synth_rows: list[dict]) -> list:
    """The console's tables of :func:`bench_array`'s results: utilization, then synthesis."""
    from rich.table import Table

    util = Table(title="TernaryArray utilization (simulation)")
    for column in ("case", "array", "N×K×T", "cycles", "utilization"):
        util.add_column(column)
    for u in util_rows:
        util.add_row(u["kind"], "×".join(map(str, u["array"])), "×".join(map(str, u["shape"])),
                     str(u["cycles"]), f"{100 * u['utilization']:.1f}%")
    synth = Table(title="TernaryArray synthesis")
    for column in ("part", "array", "LUT4/lane", "FF/lane", "fmax MHz"):
        synth.add_column(column)
    for s in synth_rows:
        synth.add_row(s["family"], "×".join(map(str, s["array"])), f"{s['luts_per_lane']:.1f}",
                      f"{s['ffs_per_lane']:.1f}", f"{s['fmax']:.1f}")
    return [util, synth]
