"""``tritium bench explore``: the explorer's predictions against measurements. Writes its section of
docs/benchmarks.md and the measurements to ``fpga/perf/data/validation.json`` (which the tests hold the
models to).

- **Cycles**: each configuration of ``CYCLE_CONFIGS`` runs in Verilator (the engine alone,
  ``tritium sim generate``'s harness), greedy, twice: an 8-token prompt then 16 tokens, and a
  48-token prompt then 8 tokens. Measured and predicted: the mean cycles of a prompt token
  (prefill) and of a generated token (decode) over the same positions, by phase.
- **Resources**: each build of ``BUILDS`` is placed and routed by ``tritium build``'s flow
  (reports under ``--root``; built when missing); nextpnr's LUT/FF/block RAM/DSP counts and fmax
  against the prediction. None of these configurations is among the fit's synthesis runs.

The weight-read bound (one position's ternary weights ÷ ``rows·simd``) is shown beside each.
"""

import json
from pathlib import Path

from fpga.perf import DATA as PERF_DATA
from fpga.perf.cycle_model import mean_cycles, weight_bound
from hw.engine import EngineSizes
from model import paths

from . import stamp, write_section

DATA = PERF_DATA / "validation.json"
CYCLE_CONFIGS = [      # model, EngineSizes(rows, simd, lanes, attention lanes, head lanes)
    ("ulx3s", EngineSizes(8, 16, 16, 32, 32)), ("small", EngineSizes(4, 8, 8, 16, 32)),
    ("ulx3s", EngineSizes(8, 16, 4, 8, 8)), ("small", EngineSizes(4, 8, 2, 4, 4)),
    ("small", EngineSizes(4, 8, 1, 1, 1)), ("small", EngineSizes(2, 8, 1, 2, 2)),
    ("small", EngineSizes(8, 8, 2, 4, 4)), ("ulx3s", EngineSizes(4, 16, 2, 4, 4)),
    ("ulx3s", EngineSizes(16, 32, 8, 16, 16)), ("small", EngineSizes(8, 16, 4, 8, 8)),
]
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\nAll:\nSpeak, speak.\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?")
RUNS = ((8, 16), (48, 8))       # prompt tokens, generated tokens
# name, board (its part and memory options), model ("tiny": the tests' tiny model), engine sizes
TINY = dict(seed=2, max_position_embeddings=16)
BUILDS = [
    ("small-2x8", "ulx3s-45f", "small", EngineSizes(2, 8, 1, 2, 2)),
    ("small-8x8", "ulx3s-45f", "small", EngineSizes(8, 8, 2, 4, 4)),
    ("tiny-2x4", "ulx3s-45f", "tiny", EngineSizes(2, 4, 2, 2, 2)),
    ("ulx3s-4x16", "ulx3s-85f", "ulx3s", EngineSizes(4, 16, 2, 4, 4)),
    # the boards' configurations before the explorer (built in the boards issue)
    ("ulx3s-8x16", "ulx3s-85f", "ulx3s", EngineSizes(8, 16, 4, 8, 8)),
    ("small-4x8", "ulx3s-45f", "small", EngineSizes(4, 8, 2, 4, 4)),
    # the explorer's recommendations with 15% LUT headroom (they did not route), and with 20%
    ("ulx3s-4x64", "ulx3s-85f", "ulx3s", EngineSizes(4, 64, 2, 16, 16)),
    ("small-4x32", "ulx3s-45f", "small", EngineSizes(4, 32, 2, 4, 16)),
    ("small-2x32", "ulx3s-45f", "small", EngineSizes(2, 32, 2, 4, 16)),
    # the first wider configuration tried on the ULX3S-85F after the pipelined blocks: placed,
    # but router2 stalled at about 7,700 overused wires after 20 iterations (2026-12-04)
    ("ulx3s-8x32", "ulx3s-85f", "ulx3s", EngineSizes(8, 32, 8, 16, 32)),
]
CYCLE_TOLERANCE, LUT_TOLERANCE = 0.05, 0.15


def measure_cycles(config, status=None) -> dict:
    from fpga.simulate import engine_params, per_token_counters, run_engine
    from model.tokenizer import load_tokenizer

    name, sizes = config
    model_dir = paths.MODELS / name
    ids = load_tokenizer(model_dir).encode(TEXT).ids
    params = engine_params(model_dir, **sizes.as_dict())
    runs = run_engine(params, [dict(prompt=ids[:n], count=count) for n, count in RUNS],
                      status=status)
    result = {"model": name, "params": EngineSizes.of(params).as_dict(), "runs": []}
    for (n, count), run in zip(RUNS, runs):
        decode = per_token_counters(run)
        result["runs"].append({"prompt": n, "generated": count,
                               "prefill": {k: v / n for k, v in run["prompt"].items()},
                               "decode": decode})
    return result


def predicted_cycles(cfg, params: dict, run: dict) -> dict:
    """The model at the run's positions: prefill 0…n−1, decode n…n+count−2 (token i > 0 of the
    generation costs position n + i − 1 and an LM head)."""
    n, count = run["prompt"], run["generated"]
    return {"prefill": mean_cycles(cfg, params, range(n), decode=False),
            "decode": mean_cycles(cfg, params, range(n, n + count - 1))}


def build_model_dir(model: str, root: Path) -> Path:
    if model == "tiny":
        from model.integer import tiny_model
        tiny_model(root / "tiny", TINY["seed"], max_position_embeddings=TINY["max_position_embeddings"])
        return root / "tiny" / "model"
    return paths.MODELS / model


def measure_build(entry, root: Path, rebuild: bool, status=None, pack_only: bool = False) -> dict:
    """A build's nextpnr counts and fmax (built unless its report is there). A build that packs but
    does not place or route keeps the counts nextpnr logged after packing, with the reason. With
    ``pack_only``: Yosys and ``nextpnr --pack-only`` alone (the counts a placed design reports, in
    minutes; no fmax)."""
    from fpga.boards import BOARDS
    from fpga.flow.build import BuildError, build, log_utilization

    name, board_name, model, engine = entry
    board = BOARDS[board_name]
    result = {"name": name, "board": board.name, "model": model, "params": engine.as_dict(),
              "distributed": list(board.distributed_ram)}
    if pack_only:
        from fpga.perf.resource_fit import synthesize

        if status:
            status(f"{name}: synthesis and packing")
        run = synthesize((model, engine, board.distributed_ram), root / name,
                         build_model_dir(model, root / name))
        return {**result, "measured": run["counts"], "fmax_mhz": None, "seconds": run["seconds"],
                "not_routed": "packed only",
                "source": "tritium bench explore --pack-only (Yosys with the board flow's script, "
                          "nextpnr-ecp5 --pack-only)"}
    directory = root / name / board.name
    report_path = directory / "report.json"
    reason = None
    if rebuild or not report_path.exists():
        try:
            build(board, root=root / name, model_dir=build_model_dir(model, root / name),
                  engine=engine.as_dict(), status=status)
        except BuildError as error:        # timing or fit: the report has the figures
            reason = str(error).splitlines()[0]
    if report_path.exists():
        report = json.loads(report_path.read_text())
        return {**result, "measured": {k: used for k, (used, _) in report["resources"].items()},
                "fmax_mhz": report["fmax_mhz"], "seconds": report["seconds"],
                "source": f"tritium bench explore ({board.name} flow, fpga/flow/build.py)"}
    log = directory / "top.tim"
    if not log.exists():
        raise RuntimeError(f"{name}: no report and no nextpnr log in {directory}: {reason}")
    return {**result, "measured": {k: used for k, (used, _) in log_utilization(board.family, log).items()},
            "fmax_mhz": None, "seconds": None, "not_routed": reason or "no report",
            "source": "tritium bench explore (nextpnr's counts after packing: it did not route)"}


def predicted_resources(entry: dict, root: Path) -> dict:
    from fpga.boards import BOARDS
    from fpga.perf.resource_model import predict
    from model.checkpoint import load_weights

    board = BOARDS[entry["board"]]
    cfg = load_weights(build_model_dir(entry["model"], root / entry["name"])).config
    # the memories that build put in LUT RAM (the board's list when it was built)
    return predict(cfg, entry["params"], board.family, tuple(entry["distributed"]))


def compare(data: dict, root: Path) -> dict:
    """Predictions beside the stored measurements, with errors."""
    from model.checkpoint import load_weights

    cycles = []
    for entry in data["cycles"]:
        cfg = load_weights(paths.MODELS / entry["model"]).config
        for run in entry["runs"]:
            predicted = predicted_cycles(cfg, entry["params"], run)
            for kind in ("prefill", "decode"):
                measured, model = run[kind]["cycles"], predicted[kind]["cycles"]
                cycles.append({"model": entry["model"], "params": entry["params"], "kind": kind,
                               "positions": (f"0–{run['prompt'] - 1}" if kind == "prefill" else
                                             f"{run['prompt']}–{run['prompt'] + run['generated'] - 2}"),
                               "measured": measured, "predicted": model,
                               "error": model / measured - 1,
                               "bound": weight_bound(cfg, entry["params"]),
                               "phases": {k: (run[kind][k], predicted[kind][k])
                                          for k in ("matmul", "attention", "vector", "head", "control")}})
    builds = []
    for entry in data["builds"]:
        predicted = predicted_resources(entry, root)
        builds.append({**entry, "predicted": predicted,
                       "error": {k: predicted[k] / entry["measured"][k] - 1
                                 for k in ("luts", "ffs", "ram", "dsp") if entry["measured"].get(k)}})
    return {"cycles": cycles, "builds": builds}


def label(params: dict) -> str:
    return (f"{params['rows']}×{params['simd']}, {params['lanes']}/{params['attention_lanes']}/"
            f"{params['head_lanes']}")


def markdown(result: dict, data: dict) -> str:
    date = data["date"]
    lines = ["## Explorer: predictions against measurements", "",
             f"`tritium bench explore` on {date}, {data['machine']}. The cycle model "
             "(fpga/perf/cycle_model.py) and the resource model (fpga/perf/resource_model.py, fitted by "
             "`tritium explore --refit` to synthesis runs that are not among these builds) against "
             "Verilator's cycle counts and nextpnr's placed designs (docs/performance.md). "
             f"Targets: cycles within ±{CYCLE_TOLERANCE:.0%}, LUTs within ±{LUT_TOLERANCE:.0%}.", "",
             "### Cycles per token (greedy; sizes: rows×simd, lanes vector/attention/LM head)", "",
             "| model | sizes | tokens | positions | measured | predicted | error | weight-read bound | "
             "measured / bound |", "|---|---|---|---|---|---|---|---|---|"]
    for c in result["cycles"]:
        lines.append(f"| {c['model']} | {label(c['params'])} | {c['kind']} | {c['positions']} | "
                     f"{c['measured']:,.0f} | {c['predicted']:,.0f} | {c['error']:+.2%} | "
                     f"{c['bound']:,.0f} | {c['measured'] / c['bound']:.2f}× |")
    worst = max(result["cycles"], key=lambda c: abs(c["error"]))
    configs = {(c["model"], label(c["params"])) for c in result["cycles"]}
    lines += ["", f"{len(configs)} configurations, {len(result['cycles'])} comparisons; the largest "
              f"error {worst['error']:+.2%} ({worst['model']} {label(worst['params'])}, "
              f"{worst['kind']}).", "",
              "### Resources (ECP5, nextpnr)", "",
              "| build | board | model | sizes | LUT measured / predicted (error) | FF | block RAM | "
              "DSP | fmax MHz | weight-read bound |", "|---|---|---|---|---|---|---|---|---|---|"]
    from model.checkpoint import load_weights
    for b in result["builds"]:
        m, p, e = b["measured"], b["predicted"], b["error"]
        bound = "—"
        if b["model"] != "tiny":
            cfg = load_weights(paths.MODELS / b["model"]).config
            bound = f"{weight_bound(cfg, b['params']):,.0f} cycles"
        cells = [f"{m[k]:,} / {p[k]:,} ({e[k]:+.1%})" if k in e else "—" for k in ("luts", "ffs", "ram", "dsp")]
        fmax = f"{b['fmax_mhz']:.1f}" if b["fmax_mhz"] else f"not routed ({b.get('not_routed', '')})"
        lines.append(f"| {b['name']} | {b['board']} | {b['model']} | {label(b['params'])} | "
                     + " | ".join(cells) + f" | {fmax} | {bound} |")
    worst = max(result["builds"], key=lambda b: abs(b["error"]["luts"]))
    lines += ["", f"{len(result['builds'])} builds; the largest LUT error "
              f"{worst['error']['luts']:+.1%} ({worst['name']}). A build measured by packing only, or that "
              "did not route, has nextpnr's counts after packing (the same counts a placed design "
              "reports) and no fmax."]
    lines += ["", "Where the measurements come from:", ""] + [
        f"- {b['name']}: {b['source']}" for b in data["builds"] if b.get("source")] + [""]
    return "\n".join(lines)


def bench_explore(docs: Path, root: Path, *, remeasure: bool, rebuild: bool, pack_only: bool = False,
                  status=None) -> dict:
    """Measure what is missing (the cycles again with ``remeasure``, the builds again with
    ``rebuild``), compare, write; ``pack_only``: builds measured by packing (:func:`measure_build`)."""
    data = json.loads(DATA.read_text()) if DATA.exists() else {"cycles": [], "builds": []}
    if remeasure:
        data["cycles"] = []
    done = {(c["model"], EngineSizes.of(c["params"])) for c in data["cycles"]}
    for config in CYCLE_CONFIGS:
        if config not in done:
            data["cycles"].append(measure_cycles(config, status))
    built = {b["name"] for b in data["builds"]}
    for entry in BUILDS:
        if rebuild or entry[0] not in built:
            data["builds"] = [b for b in data["builds"] if b["name"] != entry[0]]
            data["builds"].append(measure_build(entry, root, rebuild, status, pack_only))
    data.update(**stamp(), command="tritium bench explore")
    DATA.write_text(json.dumps(data, indent=1) + "\n")
    result = compare(data, root)
    write_section("explore", markdown(result, data), docs / "benchmarks.md")
    return result


def table(result: dict):
    """The console's table of :func:`bench_explore`'s result: predicted against measured."""
    from rich.table import Table

    rows = Table(title="explorer: predicted against measured")
    for column in ("what", "sizes", "measured", "predicted", "error"):
        rows.add_column(column, justify="right")
    for c in result["cycles"]:
        rows.add_row(f"{c['model']} {c['kind']} cycles", label(c["params"]),
                     f"{c['measured']:,.0f}", f"{c['predicted']:,.0f}", f"{c['error']:+.2%}")
    for b in result["builds"]:
        rows.add_row(f"{b['name']} LUTs", label(b["params"]), f"{b['measured']['luts']:,}",
                     f"{b['predicted']['luts']:,}", f"{b['error']['luts']:+.1%}")
    return rows
