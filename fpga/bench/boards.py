"""``tritium bench boards``: per board, the build's resource use and post-route fmax (``tritium build``,
run unless a report exists or with ``--rebuild``), the SoC's clock cycles per token from its
simulation (the virtual board of ``tritium chat --sim``: the same byte protocol, the engine's cycle
counter read over STATUS), tokens per second = clock ÷ cycles per token, and the UART's own limit.
Writes docs/benchmarks.md (section ``boards``) and docs/bench-boards.png, beside ZyboGPT. Each
board's row is kept in docs/bench-boards.json with the date it was measured, so benching some
boards (``--boards``) updates their rows and keeps the others'.
"""

import json
from pathlib import Path

from fpga.boards import BOARDS
from fpga.flow.build import BuildError, build
from model import paths

from . import provenance, stamp, write_section
from hw.protocol import TOKEN_BYTES, Response, frame
from hw.uart import FRAME_BITS

PROMPT, TOKENS = "ROMEO:", 32
TARGETS = {"ulx3s-85f": 20_000, "ulx3s-45f": 10_000, "icebreaker": 2_000}   # issue 19's, tok/s
ZYBOGPT = ("ZyboGPT (Zybo Z7-20, Vivado)", "115 K parameters", 3_072)
TOKEN_FRAME_BYTES = len(frame(Response.TOKEN, bytes(TOKEN_BYTES)))   # SYNC, kind, length, token, CRC
BUILD_TIME_LIMIT = 40 * 60    # seconds: a build still placing or routing then is stopped and reported


def placed(report) -> bool:
    """The build fits and was placed and routed (it has a post-route fmax)."""
    return bool(report.get("fits") and report.get("fmax_mhz"))


def timing_met(row) -> bool:
    """The build was placed and routed, and its post-route fmax reaches the clock it was built for."""
    return placed(row["report"]) and row["report"]["fmax_mhz"] >= row["clock_mhz"]


def board_report(board, root: Path, rebuild: bool, status=None) -> dict:
    path = root / board.name / "report.json"
    if rebuild or not path.exists():
        try:
            build(board, root=root, status=status, time_limit=BUILD_TIME_LIMIT)
        except BuildError as e:
            if not path.exists():       # no figures at all: keep the reason (--rebuild retries)
                path.write_text(json.dumps({"error": str(e).splitlines()[0], "fits": False}))
    return json.loads(path.read_text())


def simulated_cycles(board, status=None) -> dict:
    """Cycles per generated token of the board's SoC (Verilator), greedy, from PROMPT."""
    from fpga.host.chat import Conversation
    from model.tokenizer import load_tokenizer
    from fpga.host.virtual import board_soc_params, open_board

    model_dir = paths.REPO / board.model
    with open_board(board_soc_params(board, model_dir), timeout=600, status=status) as link:
        conversation = Conversation(link, load_tokenizer(model_dir), link.status()["context"])
        if status:
            status(f"{board.name}: generating {TOKENS} tokens in simulation")
        conversation.turn(PROMPT, TOKENS)
        cycles, tokens = conversation.cycles[-1]
    return {"cycles_per_token": cycles / tokens, "tokens": tokens}


def bench_boards(names=None, *, root=Path("build"), rebuild=False, docs=paths.DOCS, status=None):
    """Bench the boards ``names`` (default all) and return their rows; the section and the plot
    show every board's latest row (docs/bench-boards.json)."""
    rows = []
    for name in names or BOARDS:
        board = BOARDS[name]
        if status:
            status(f"{name}: build")
        row = {"board": name, "model": board.model, "engine": board.engine_parameters(),
               "clock_mhz": board.clock_mhz, "baud": board.baud,
               "report": board_report(board, root, rebuild, status)}
        row.update(simulated_cycles(board, status))
        row["tok_s_clock"] = board.clock_mhz * 1e6 / row["cycles_per_token"]
        fmax = row["report"].get("fmax_mhz")
        row["tok_s_fmax"] = fmax * 1e6 / row["cycles_per_token"] if fmax else None
        row["uart_tok_s"] = board.baud / (FRAME_BITS * TOKEN_FRAME_BYTES)
        row["measured"] = stamp()["date"]
        rows.append(row)
        shown = keep_rows(docs / "bench-boards.json", [row])   # each board's row as it is done
    write_section("boards", render(shown), docs / "benchmarks.md")
    plot(shown, docs / "bench-boards.png")
    return rows


def keep_rows(store: Path, rows: list) -> list:
    """Store ``rows`` (one a board) in ``store`` over the boards' earlier rows; every stored row,
    in BOARDS order."""
    kept = json.loads(store.read_text()) if store.exists() else {}
    kept.update({row["board"]: row for row in rows})
    store.write_text(json.dumps(kept, indent=1) + "\n")
    return [kept[name] for name in BOARDS if name in kept]


def _resources(report):
    if "resources" not in report:
        return ["—"] * 4
    out = []
    for key in ("luts", "ffs", "ram", "dsp"):
        used = report["resources"].get(key)
        out.append("—" if used is None else
                   f"{used[0]:,}/{used[1]:,}" + (" **over**" if used[0] > used[1] else ""))
    return out


def render(rows) -> str:
    lines = [
        "## Boards: resources, fmax, tokens per second",
        "",
        f"{provenance('tritium bench boards')}, yowasp yosys + nextpnr; cycles per token from the SoC simulated in Verilator behind the byte protocol "
        f"(prompt {PROMPT!r}, {TOKENS} greedy tokens, the engine's busy cycles over STATUS). "
        "Each row was measured on the date in its last column (`--boards` benches some and keeps "
        "the others' rows, docs/bench-boards.json); the engine column gives the sizes built then "
        "(rows×simd, lanes/attention/LM head; a norm's word of beats, where more than one).",
        "tok/s = clock ÷ cycles per token (the design's clock; at the post-route fmax in brackets). "
        f"The UART limit is baud ÷ ({FRAME_BITS} bits × {TOKEN_FRAME_BYTES} bytes a TOKEN frame).",
        "",
        "| board | model | engine | LUT | FF | block RAM | DSP | fmax MHz | clock MHz | cycles/token "
        "| tok/s | UART limit tok/s | target | build s | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rep = r["report"]
        fmax = rep.get("fmax_mhz")
        why = "not placed here" if "error" in rep else "does not fit"
        if timing_met(r):
            tok_s = f"{r['tok_s_clock']:,.0f} ({r['tok_s_fmax']:,.0f})"
        elif placed(rep):
            tok_s = (f"— (timing not met: {r['tok_s_fmax']:,.0f} at the fmax; {r['tok_s_clock']:,.0f} "
                     f"at {r['clock_mhz']} MHz if it were)")
        else:
            tok_s = f"— ({why}; {r['tok_s_clock']:,.0f} at {r['clock_mhz']} MHz if it did)"
        target = TARGETS.get(r["board"])
        e = r["engine"]
        engine = (f"{e['rows']}×{e['simd']}, {e['lanes']}/{e['attention_lanes']}/{e['head_lanes']}"
                  + (f", norm ×{e['norm_ratio']}" if e.get("norm_ratio", 1) != 1 else "")
                  if e.get("rows") else "—")
        cells = [r["board"], Path(r["model"]).name, engine, *_resources(rep),
                 (f"{fmax:.1f}" if timing_met(r) else f"**{fmax:.1f}** (< clock)") if fmax else "—",
                 f"{r['clock_mhz']}", f"{r['cycles_per_token']:,.0f}",
                 tok_s, f"{r['uart_tok_s']:,.0f}", f"≥ {target:,}" if target else "—",
                 f"{rep['seconds']:.0f}" if "seconds" in rep else "—", r.get("measured", "—")]
        lines.append("| " + " | ".join(cells) + " |")
    name, size, rate = ZYBOGPT
    lines += [f"| {name} | {size} | | | | | | | | | {rate:,} (reported) | | | | |", ""]
    for r in rows:
        target = TARGETS.get(r["board"])
        if target:
            tok_s = r["tok_s_clock"] if timing_met(r) else r["tok_s_fmax"]
            measured = (f"{tok_s:,.0f} tok/s" + ("" if timing_met(r) else " at the fmax")
                        + (f", {target / tok_s:.1f}× short" if tok_s < target else "")
                        if placed(r["report"]) else "the SoC is not placed" if "error" in r["report"]
                        else "the SoC does not fit")
            lines.append(f"- target ≥ {target:,} tok/s on {r['board']}: "
                         f"{'met' if placed(r['report']) and tok_s >= target else 'not met'} ({measured})")
        if "error" in r["report"]:
            lines.append(f"- {r['board']}: {r['report']['error']}")
    lines.append("")
    lines.append("![tokens per second by board](bench-boards.png)")
    return "\n".join(lines)


def plot(rows, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["board"] for r in rows] + ["ZyboGPT"]
    values = [r["tok_s_clock"] if placed(r["report"]) else 0 for r in rows] + [ZYBOGPT[2]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(names, values, color=["tab:blue"] * len(rows) + ["tab:gray"])
    for bar, r in zip(bars, rows):
        if not placed(r["report"]):
            ax.annotate("not placed" if "error" in r["report"] else "does not fit",
                        (bar.get_x() + bar.get_width() / 2, 120), ha="center", va="bottom", fontsize=8,
                        rotation=90)
    for board, target in TARGETS.items():
        if board in names:
            i = names.index(board)
            ax.hlines(target, i - 0.4, i + 0.4, colors="tab:red", linestyles="dashed")
    ax.set_ylabel("tokens / s (dashed: target)")
    ax.set_yscale("log")
    ax.set_ylim(100, 2 * max(TARGETS.values()))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(rows):
    """The console's table of :func:`bench_boards`'s rows."""
    from rich.table import Table

    result = Table(title="boards (tok/s = clock / simulated cycles per token)")
    for column in ("board", "fits", "fmax MHz", "clock MHz", "cycles/token", "tok/s"):
        result.add_column(column, justify="right")
    for r in rows:
        fmax = r["report"].get("fmax_mhz")
        result.add_row(r["board"], str(r["report"].get("fits", False)), f"{fmax:.1f}" if fmax else "—",
                       str(r["clock_mhz"]), f"{r['cycles_per_token']:,.0f}", f"{r['tok_s_clock']:,.0f}")
    return result
