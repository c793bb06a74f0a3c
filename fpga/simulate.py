"""The Engine generating text in Verilator (``tritium sim generate``, ``tritium bench engine``).

The Verilator model is built once per model and engine configuration (cached under build/sim/ by
sim/harness.py); sim/tb_engine.py's ``generate`` bench drives it and writes its measurements.
"""

import json
import tempfile
import time
from pathlib import Path

from sim.engine_trace import engine_factory
from sim.harness import build




def engine_params(model_dir: Path, k_max: int = 8, **sizes) -> dict:
    """The cocotb harness's JSON parameters: the model's default sizes (``fpga.perf.cycle_model.SIZES``)
    unless given."""
    from hw.engine import default_parameters
    from model.checkpoint import load_weights

    params = default_parameters(load_weights(model_dir).config)
    params.update({k: v for k, v in sizes.items() if v})
    return dict(model=str(Path(model_dir).resolve()), k_max=k_max, taps=False, **params)


def design_name(params: dict) -> str:
    name = "".join(c if c.isalnum() else "_" for c in Path(params["model"]).name)
    return (f"engine_{name}_r{params['rows']}s{params['simd']}l{params['lanes']}"
            f"a{params['attention_lanes']}h{params['head_lanes']}")


def build_engine(params: dict, status=None) -> tuple:
    """The runner and build directory of the engine's Verilator model (built on first use)."""
    log = Path(tempfile.mkdtemp(prefix="tritium-build-")) / "build.log"
    started = time.perf_counter()
    if status:
        status(f"Verilator model of {params['model']} (built once, then cached; log {log})")
    runner, build_dir = build(engine_factory, params, design=design_name(params),
                              simulator="verilator", log_file=log)
    return runner, build_dir, time.perf_counter() - started


def run_engine(params: dict, runs: list, *, echo: bool = False, status=None, built=None) -> list:
    """Each run (``prompt`` ids, ``count``, ``temperature``, ``top_k``, ``seed``) from position 0
    on the engine in Verilator (``built``: what :func:`build_engine` returned, else it is called);
    per run: tokens, counters at each token and for the prompt and decode (by phase), seconds."""
    runner, build_dir, _ = built or build_engine(params, status)
    test_dir = Path(tempfile.mkdtemp(prefix="tritium-sim-"))
    result = test_dir / "result.json"
    if status:
        status("simulating")
    runner.test(test_module="sim.tb_engine", testcase="generate", hdl_toplevel=design_name(params),
                build_dir=build_dir, test_dir=test_dir,
                extra_env={"TB_PARAMS": json.dumps(params), "COCOTB_LOG_LEVEL": "WARNING",
                           "GPI_LOG_LEVEL": "WARNING",
                           "TB_JOB": json.dumps({"runs": runs, "result": str(result),
                                                 "echo": echo})})
    if not result.exists():
        raise RuntimeError(f"the engine simulation wrote no result; see {test_dir}")
    return json.loads(result.read_text())


def per_token_counters(run: dict) -> dict:
    """Mean cycles (all, and by phase) of a run's generated tokens after the first: each costs the
    layers at one position and an LM head (the first costs only the LM head)."""
    first, last = run["token_counters"][0], run["token_counters"][-1]
    return {k: (last[k] - first[k]) / (len(run["token_counters"]) - 1) for k in first}
