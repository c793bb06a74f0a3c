"""``tritium explore``: the design space of a board and a model, from the cycle model
(:mod:`fpga.perf.cycle_model`) and the resource model (:mod:`fpga.perf.resource_model`): every array and lane
size the engine accepts, with its shallow buffers in block RAM or in LUT RAM; per point the cycles
per token (prefill and decode, by phase), LUT/FF/RAM/DSP, the clock and tok/s; the points that do
not fit are refused with the resource that runs out; the Pareto front (tok/s against LUTs) as a
table, and a plot.
"""

import dataclasses
import itertools

from hw.engine import SHALLOW_BUFFERS, EngineSizes

from .cycle_model import mean_cycles, weight_bound
from .memory_map import block_slices, soc_memories
from .resource_model import RESOURCES, fmax_class, overflows, predict

ROWS = (1, 2, 4, 8, 16, 32, 64)
POWERS = (1, 2, 4, 8, 16, 32, 64)
MAX_LANES = 32
POSITIONS = 16          # decode and prefill are averaged over this many positions of the context


@dataclasses.dataclass
class Point:
    params: dict                # hw.engine.Engine sizes
    buffers: str                # "block" or "lut": where the shallow buffers are
    decode: dict                # mean cycles per generated token over the context, by phase
    prefill: dict               # mean cycles per prompt token
    bound: float                # the weight-read bound, cycles per token
    resources: dict             # predicted luts, ffs, ram, dsp
    over: list                  # (resource, predicted, available) that do not fit
    clock_mhz: float
    cfg: object = dataclasses.field(repr=False, default=None)

    @property
    def fits(self) -> bool:
        return not self.over

    @property
    def tokens_per_second(self) -> float:
        return self.clock_mhz * 1e6 / self.decode["cycles"]

    @property
    def prefill_tokens_per_second(self) -> float:
        return self.clock_mhz * 1e6 / self.prefill["cycles"]

    def label(self) -> str:
        p = self.params
        return (f"{p['rows']}×{p['simd']}, lanes {p['lanes']}/{p['attention_lanes']}/"
                f"{p['head_lanes']}" + (", LUT-RAM buffers" if self.buffers == "lut" else ""))

    def refusal(self) -> str:
        return "does not fit: " + ", ".join(f"{name} {used:,} of {available:,}"
                                           for name, used, available in self.over)


def candidates(cfg, *, rows=None, simd=None, lanes=None, attention_lanes=None,
               head_lanes=None) -> list[dict]:
    """Every engine size ``hw.engine.Engine`` accepts for ``cfg`` (powers of two, lanes up to
    :data:`MAX_LANES`, :meth:`EngineSizes.problem` none; a size given pins it). A pinned size the
    engine does not accept raises ValueError, naming what would."""
    pinned = dict(rows=rows, simd=simd, lanes=lanes, attention_lanes=attention_lanes,
                  head_lanes=head_lanes)
    lane_counts = [n for n in POWERS if n <= MAX_LANES]

    def choose(given, options):
        return ([given] if given in options else []) if given else options
    if rows is not None and (not isinstance(rows, int) or rows < 1):
        raise ValueError(f"rows must be a positive integer, not {rows!r}")
    points = []
    for s, n, a, h in itertools.product(choose(simd, POWERS), choose(lanes, lane_counts),
                                        choose(attention_lanes, lane_counts),
                                        choose(head_lanes, lane_counts)):
        if EngineSizes(1, s, n, a, h).problem(cfg) is None:
            points += [dict(rows=r, simd=s, lanes=n, attention_lanes=a, head_lanes=h)
                       for r in ([rows] if rows else ROWS)]
    if not points:
        free = candidates(cfg)
        for name, value in pinned.items():
            allowed = sorted({p[name] for p in free})
            if value and value not in allowed:
                raise ValueError(f"{name} {value} is not a size the engine takes for this model; "
                                 f"{allowed} would be (powers of two, docs/engine.md)")
        raise ValueError(f"no engine has these sizes together: {pinned}; see hw.engine.Engine")
    return points


def evaluate(board, cfg, params: dict, buffers: str = "block") -> Point:
    """One point on ``board``: cycles, resources, what does not fit, tok/s at the board's clock."""
    loaded = board.flash_offset is not None
    memory = dict(loaded=loaded, spram=loaded and board.family == "ice40")
    # memory banking: the shallow buffers the board flow may put in LUT RAM instead of block RAM
    # (Board.distributed_ram; the ULX3S-85F needs them there to fit its block RAM)
    distributed = SHALLOW_BUFFERS if buffers == "lut" else ()
    context = cfg.max_position_embeddings
    positions = range(0, context, max(1, context // POSITIONS))
    resources = predict(cfg, params, board.family, distributed, **memory)
    return Point(params=params, buffers=buffers,
                 decode=mean_cycles(cfg, params, positions),
                 prefill=mean_cycles(cfg, params, positions, decode=False),
                 bound=weight_bound(cfg, params), resources=resources,
                 over=overflows(resources, board.part), clock_mhz=board.clock_mhz, cfg=cfg)


def sweep(board, cfg, progress=None, **pinned) -> list[Point]:
    """Every candidate size with the shallow buffers in block RAM and in LUT RAM."""
    sizes = candidates(cfg, **pinned)
    points = []
    for params, buffers in itertools.product(sizes, ("block", "lut")):
        points.append(evaluate(board, cfg, params, buffers))
        if progress:
            progress()
    return points


def pareto(points: list[Point]) -> list[Point]:
    """The fitting points no other fitting point beats on both tok/s and LUTs, by LUTs."""
    fitting = sorted((p for p in points if p.fits),
                     key=lambda p: (p.resources["luts"], -p.tokens_per_second))
    front, best = [], 0.0
    for point in fitting:
        if point.tokens_per_second > best:
            front.append(point)
            best = point.tokens_per_second
    return front


PHASES = ("matmul", "attention", "vector", "head", "control")


def table(board, front: list[Point], current: Point, title: str):
    """A rich table of the Pareto front, the board's own configuration marked."""
    from rich.table import Table

    part = board.part
    result = Table(title=title)
    for name in ("array", "lanes v/a/h", "buffers", "LUT", "FF", "BRAM", "DSP", "decode cycles",
                 "by phase (" + "/".join(p[:3] for p in PHASES) + ")", "× bound", "prefill",
                 "tok/s"):
        result.add_column(name, justify="left" if name in ("lanes v/a/h", "buffers") else "right")
    shown = front + ([current] if current not in front else [])
    for point in shown:
        p, r, c = point.params, point.resources, point.decode
        result.add_row(
            f"{p['rows']}×{p['simd']}" + (" board" if point is current else ""),
            f"{p['lanes']}/{p['attention_lanes']}/{p['head_lanes']}", point.buffers,
            *(f"{r[k]:,} {r[k] / getattr(part, k):.0%}" for k in RESOURCES),
            f"{c['cycles']:,.0f}", "/".join(f"{c[k]:,.0f}" for k in PHASES),
            f"{c['cycles'] / point.bound:.2f}", f"{point.prefill['cycles']:,.0f}",
            f"{point.tokens_per_second:,.0f}", style="bold" if point is current else None)
    return result


def point_table(board, point: Point, title: str):
    """One point in full: resources against the part, cycles by phase, tok/s."""
    from rich.table import Table

    part = board.part
    result = Table(title=title)
    for name in ("", "prefill (a prompt token)", "decode (a generated token)"):
        result.add_column(name, justify="right")
    for phase in (*PHASES, "cycles"):
        result.add_row(f"{phase} cycles" if phase != "cycles" else "cycles per token",
                       f"{point.prefill[phase]:,.0f}", f"{point.decode[phase]:,.0f}")
    result.add_row("weight-read bound", f"{point.bound:,.0f}", f"{point.bound:,.0f}")
    result.add_row(f"tok/s at {point.clock_mhz:g} MHz", f"{point.prefill_tokens_per_second:,.0f}",
                   f"{point.tokens_per_second:,.0f}")
    result.add_row("fmax class", "", f"{part.family}: {fmax_class(part.family)}")
    columns = [m for m in soc_memories(point.cfg, point.params) if m.name.startswith("engine/linear/weights")]
    slices = [s for m in columns for s in block_slices(m.width, m.depth, board.family, m.rom)]
    depth = columns[0].depth
    result.add_row("weight memory", "", f"{sum(m.width for m in columns)}-bit words × {depth:,}: "
                   f"{len(slices)} block RAMs side by side, "
                   f"{sum(-(-depth // d) for _, d in slices)} in all")
    for name in RESOURCES:
        used, available = point.resources[name], getattr(part, name)
        result.add_row(f"{name} ({part.name})", "", f"{used:,} of {available:,}"
                       + (" [red]does not fit[/red]" if used > available else ""))
    return result


def plot(points: list[Point], front: list[Point], current: Point, path, title: str):
    """tok/s against LUTs: the fitting points, the front, the refused points, the board's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    fitting = [p for p in points if p.fits]
    refused = [p for p in points if not p.fits]
    axes.scatter([p.resources["luts"] for p in refused], [p.tokens_per_second for p in refused],
                 s=8, marker="x", color="0.75", label="does not fit")
    axes.scatter([p.resources["luts"] for p in fitting], [p.tokens_per_second for p in fitting],
                 s=10, color="tab:blue", label="fits")
    axes.plot([p.resources["luts"] for p in front], [p.tokens_per_second for p in front],
              "-o", color="tab:red", markersize=4, label="Pareto front")
    axes.scatter([current.resources["luts"]], [current.tokens_per_second], s=120, marker="*",
                 color="black", zorder=5, label=f"board: {current.label()}")
    axes.set_xlabel("LUTs (predicted)")
    axes.set_ylabel("tokens/s (predicted, decode, mean over the context)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def board_point(board, cfg) -> Point:
    """The board's own configuration (fpga/boards), evaluated."""
    params = board.engine.as_dict()
    buffers = "lut" if board.distributed_ram else "block"
    return evaluate(board, cfg, params, buffers)


def best(points: list[Point]) -> Point | None:
    """The fastest fitting point (fewest LUTs among equals)."""
    fitting = [p for p in points if p.fits]
    return max(fitting, key=lambda p: (round(p.tokens_per_second, 6), -p.resources["luts"]),
               default=None)


# What a recommendation leaves free for the model's error (docs/performance.md: LUTs within 15%,
# block RAM within 2) and for placement and routing.
LUT_HEADROOM = 0.80
RAM_HEADROOM = 2


def comfortable(point: Point, part) -> bool:
    r = point.resources
    return (r["luts"] <= LUT_HEADROOM * part.luts and r["ffs"] <= LUT_HEADROOM * part.ffs
            and r["ram"] + RAM_HEADROOM <= part.ram and r["dsp"] <= part.dsp)


def recommend(board, points: list[Point]) -> Point | None:
    """The explorer's choice for ``board``: the fastest point that fits with headroom (fewest
    LUTs among equals)."""
    part = board.part
    return best([p for p in points if p.fits and comfortable(p, part)])


def summary(board, points: list[Point], current: Point) -> str:
    """How many points fit, why the others do not, the fastest, and the board's against it."""
    refused = [p for p in points if not p.fits]
    reasons = {}
    for point in refused:
        for name, _, _ in point.over:
            reasons[name] = reasons.get(name, 0) + 1
    fastest, choice = best(points), recommend(board, points)
    lines = [f"{len(points)} points: {len(points) - len(refused)} fit, {len(refused)} refused ("
             + ", ".join(f"{n} {name}" for name, n in sorted(reasons.items(), key=lambda x: -x[1]))
             + " too many)"]
    if fastest:
        lines.append(f"fastest that fits: {fastest.label()}: {fastest.tokens_per_second:,.0f} tok/s, "
                     f"{fastest.resources['luts']:,} LUTs")
    if choice:
        lines.append(f"recommended (fastest with {1 - LUT_HEADROOM:.0%} of the LUTs and "
                     f"{RAM_HEADROOM} block RAMs to spare): {choice.label()}: "
                     f"{choice.tokens_per_second:,.0f} tok/s, {choice.resources['luts']:,} LUTs")
    state = "fits" if current.fits else current.refusal()
    lines.append(f"the board's configuration: {current.label()}: "
                 f"{current.tokens_per_second:,.0f} tok/s ({state})")
    return "\n".join(lines)


def show_point(console, board, cfg, sizes: dict, buffers: str, title: str) -> bool:
    """``tritium explore`` with all five sizes pinned: the point's prediction, or why it is
    refused (False). A size the engine does not take is a ValueError."""
    candidates(cfg, **sizes)
    point = evaluate(board, cfg, sizes, buffers)
    console.print(point_table(board, point, f"{title}: {point.label()} (predicted)"))
    if not point.fits:
        console.print(f"[red]refused: {point.label()} {point.refusal()}[/red]")
        return False
    console.print(f"{point.tokens_per_second:,.0f} tok/s at {board.clock_mhz} MHz "
                  f"(prefill {point.prefill_tokens_per_second:,.0f} tok/s)")
    return True


def show_sweep(console, board, cfg, pinned: dict, title: str, plot_path):
    """``tritium explore`` over the sizes not ``pinned``: the Pareto front against the board's own
    configuration, a summary, and the plot written to ``plot_path``."""
    from rich.progress import Progress

    current = board_point(board, cfg)
    count = len(candidates(cfg, **pinned))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{board.name}: {count * 2} points", total=count * 2)
        points = sweep(board, cfg, lambda: progress.advance(task), **pinned)
    front = pareto(points)
    console.print(table(board, front, current, f"{title}: the Pareto front "
                        f"(tok/s against LUTs) at {board.clock_mhz} MHz"))
    console.print(summary(board, points, current))
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    plot(points, front, current, plot_path, title)
    console.print(f"plot: {plot_path}")
