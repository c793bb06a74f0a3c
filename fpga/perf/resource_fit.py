"""The synthesis runs the resource model is fitted to, and the fit (``tritium explore --refit``).

Each run synthesizes a whole SoC (``fpga.boards.BoardTop``: the engine, HostLink, UART, PLL) with
the board flow's own Yosys script and packs it with nextpnr (``--pack-only``: the cell counts after
packing are the ones nextpnr reports for a placed design; placement does not change them), at one
point of a design of experiments that moves each engine size in turn, on three models. The counts
go to ``fpga/perf/data/synthesis_runs.json``; the least-squares fit of each resource over the features of
:func:`fpga.perf.resource_model.features` goes to ``fpga/perf/data/resource_model.json``.

None of these points is one of the validation builds (``tritium bench explore``), which are placed
and routed separately.
"""

import json
import subprocess
import time
from pathlib import Path

import numpy as np

from fpga.bench import stamp, write_section
from fpga.boards import BOARDS, BoardTop
from fpga.flow.build import build_options, log_utilization, tool_environment
from hw.engine import SHALLOW_BUFFERS, EngineSizes
from model import paths

from . import DATA

RUNS = DATA / "synthesis_runs.json"
MODEL = DATA / "resource_model.json"

# A random model between the shipped ones, made by model.integer.tiny_model (seed, config overrides).
TINY = {"seed": 3, "vocab_size": 40, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 32}

# (model, engine sizes, memories forced to LUT RAM): each size moved from a base point in turn.
POINTS = [
    ("small", EngineSizes(4, 8, 1, 1, 1), ()),
    ("small", EngineSizes(2, 4, 1, 1, 1), ()),
    ("small", EngineSizes(4, 8, 4, 4, 4), ()),
    ("small", EngineSizes(4, 8, 8, 16, 32), ()),
    ("small", EngineSizes(16, 8, 2, 4, 4), ()),
    ("small", EngineSizes(4, 32, 2, 4, 4), ()),
    ("small", EngineSizes(4, 8, 2, 16, 2), ()),
    ("small", EngineSizes(4, 8, 2, 2, 16), ()),
    ("small", EngineSizes(8, 16, 4, 8, 8), ()),
    ("small", EngineSizes(8, 8, 1, 2, 2),
     ("rms/buffer",)),
    ("tiny", EngineSizes(2, 8, 2, 4, 4), ()),
    ("tiny", EngineSizes(8, 32, 1, 1, 8), ()),
    ("ulx3s", EngineSizes(4, 8, 2, 2, 2), ()),
    ("ulx3s", EngineSizes(8, 16, 2, 4, 4), SHALLOW_BUFFERS),
]
FIT_BOARD = "ulx3s-85f"       # the largest ECP5: every point packs into it
# One measured build of each other family (``tritium build --board B``; docs/boards.md): its counts
# over the ECP5 model's prediction of the same design scale that family's predictions (2026-12-05;
# Gowin: nextpnr-himbaechel's LUT4s and ALUs).
FAMILY_BUILDS = {"ice40": ("icebreaker", {"luts": 18_874, "ram": 96, "dsp": 38}),
                 "gowin": ("tang-nano-9k", {"luts": 16_806})}


def model_dir(name: str, root: Path) -> Path:
    if name == "tiny":
        from model.integer import tiny_model
        overrides = {k: v for k, v in TINY.items() if k != "seed"}
        tiny_model(root / "tiny", TINY["seed"], **overrides)
        return root / "tiny" / "model"
    return paths.MODELS / name


def synthesize(point, root: Path, model_path: Path | None = None) -> dict:
    """Yosys (the board flow's script) and nextpnr --pack-only on one point; its counts (those a
    placed design reports). The model is ``model_path``, else the point's model by name."""
    import dataclasses

    name, sizes, distributed = point
    engine = sizes.as_dict()
    board = dataclasses.replace(BOARDS[FIT_BOARD], distributed_ram=tuple(distributed))
    directory = root / f"{name}_{'_'.join(str(v) for v in engine.values())}"
    model = board.load_model(model_path or model_dir(name, root))
    top = BoardTop(board, model, engine)
    started = time.perf_counter()
    plan = board.platform_class()().build(top, name="top", build_dir=str(directory), do_build=False,
                                          **build_options(board))
    plan.extract(str(directory))
    env = tool_environment(board.family)
    subprocess.run([env["YOSYS"], "-q", "-l", "top.rpt", "top.ys"], cwd=directory, env=env,
                   check=True, capture_output=True)
    pnr = subprocess.run([env["NEXTPNR_ECP5"], "--85k", "--package", "CABGA381", "--json", "top.json",
                          "--pack-only", "--log", "pack.log"], cwd=directory, env=env,
                         capture_output=True, text=True)
    if pnr.returncode:
        raise RuntimeError(f"nextpnr --pack-only failed in {directory}: {pnr.stderr[-1500:]}")
    counts = {key: used for key, (used, _) in log_utilization(board.family, directory / "pack.log").items()}
    return {"model": name, "engine": engine, "distributed": list(distributed), "family": "ecp5",
            "counts": counts, "seconds": round(time.perf_counter() - started, 1)}


def run_points(root: Path, status=None) -> list:
    """Every point of ``POINTS``, written to ``RUNS`` as they finish."""
    runs = []
    for i, point in enumerate(POINTS):
        if status:
            status(f"synthesis run {i + 1}/{len(POINTS)}: {point[0]} {point[1]}")
        runs.append(synthesize(point, root))
        RUNS.write_text(json.dumps({
            "command": "tritium explore --refit --synthesize", **stamp(), "board": FIT_BOARD,
            "runs": runs}, indent=1) + "\n")
    return runs


def fit(runs: list) -> dict:
    """Least squares of each resource on the features, every coefficient non-negative."""
    from .resource_model import FEATURES, features, memory_use

    from model.checkpoint import load_weights
    import tempfile

    rows, targets = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            cfg = load_weights(model_dir(run["model"], Path(tmp))).config
            use = memory_use(cfg, run["engine"], "ecp5", run["distributed"])
            f = features(cfg, run["engine"], use)
            rows.append([f[name] for name in FEATURES])
            for key, value in run["counts"].items():
                targets.setdefault(key, []).append(value)
    matrix = np.array(rows, dtype=float)
    model = {"features": list(FEATURES), "family": "ecp5", "points": len(runs), "coefficients": {},
             "residual_percent": {}}
    for key in ("luts", "ffs", "dsp"):
        y = np.array(targets[key], dtype=float)
        coef = _nonnegative_lstsq(matrix, y)
        predicted = matrix @ coef
        model["coefficients"][key] = {n: round(float(c), 4) for n, c in zip(FEATURES, coef)}
        model["residual_percent"][key] = round(float(np.max(np.abs(predicted / np.maximum(y, 1) - 1)))
                                               * 100, 2)
    model["family_scale"] = family_scales(model)
    return model


def family_scales(model: dict) -> dict:
    """Measured ÷ predicted for each family's build in ``FAMILY_BUILDS`` (with the ECP5 fit)."""
    from model.checkpoint import load_weights

    from .resource_model import estimate

    scales = {}
    for family, (name, measured) in FAMILY_BUILDS.items():
        board = BOARDS[name]
        cfg = load_weights(paths.REPO / board.model).config
        params = board.engine_parameters()
        loaded = board.flash_offset is not None
        options = dict(loaded=loaded, spram=loaded and family == "ice40")
        predicted = estimate(model, cfg, params, family, board.distributed_ram, **options)
        scales[family] = {key: round(value / predicted[key], 3) for key, value in measured.items()}
        scales[family]["build"] = name
    return scales


def _nonnegative_lstsq(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient ≥ 0 (active set: drop the most negative, refit)."""
    active = list(range(a.shape[1]))
    while True:
        coef = np.zeros(a.shape[1])
        coef[active] = np.linalg.lstsq(a[:, active], y, rcond=None)[0]
        negative = [i for i in active if coef[i] < 0]
        if not negative:
            return coef
        active.remove(min(negative, key=lambda i: coef[i]))


def refit(synthesize_again: bool, root: Path, status=None) -> dict:
    """``tritium explore --refit``: (re)run the synthesis points if asked, fit, store the model."""
    if synthesize_again or not RUNS.exists():
        run_points(root, status)
    runs = json.loads(RUNS.read_text())["runs"]
    model = fit(runs)
    model["command"] = "tritium explore --refit"
    MODEL.write_text(json.dumps(model, indent=1) + "\n")
    write_section("resource-fit", markdown(model, runs), paths.DOCS / "performance.md")
    return model


def markdown(model: dict, runs: list) -> str:
    """The coefficients and the fit's residuals, for docs/performance.md."""
    features = model["features"]
    lines = [f"Fitted by `tritium explore --refit` to {model['points']} runs "
             f"(`fpga/perf/data/synthesis_runs.json`); the largest residual over the runs: "
             + ", ".join(f"{k} {v}%" for k, v in model["residual_percent"].items()) + ".", "",
             "| resource | " + " | ".join(features) + " |", "|---|" + "---|" * len(features)]
    for resource, coef in model["coefficients"].items():
        lines.append(f"| {resource} | " + " | ".join(f"{coef[f]:,.4g}" for f in features) + " |")
    lines += ["", "Other families (measured ÷ predicted on one build): " + "; ".join(
        f"{family} ({scale['build']}): " + ", ".join(f"{k} × {v}" for k, v in scale.items()
                                                    if k != "build")
        for family, scale in model["family_scale"].items()) + "."]
    return "\n".join(lines)
