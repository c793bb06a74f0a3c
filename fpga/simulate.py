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
from sim.virtual_board import extra_sources


def engine_params(model_dir: Path, k_max: int = 8, **sizes) -> dict:
    """The cocotb harness's JSON parameters: the model's default sizes (``hw.engine.EngineSizes``)
    unless given."""
    from hw.engine import EngineSizes
    from model.checkpoint import load_weights

    params = EngineSizes.default(load_weights(model_dir).config).as_dict()
    params.update({k: v for k, v in sizes.items() if v})
    return dict(model=str(Path(model_dir).resolve()), k_max=k_max, taps=False, **params)


def design_name(params: dict) -> str:
    name = "".join(c if c.isalnum() else "_" for c in Path(params["model"]).name)
    return (f"engine_{name}_r{params['rows']}s{params['simd']}l{params['lanes']}"
            f"a{params['attention_lanes']}h{params['head_lanes']}"
            + (f"n{params['norm_ratio']}" if params.get("norm_ratio", 1) != 1 else "")
            + (f"o{params['output_lanes']}" if params.get("output_lanes") else "")
            + (f"d{params['dequantizer_units']}" if params.get("dequantizer_units") else ""))


def build_engine(params: dict, status=None) -> tuple:
    """The runner and build directory of the engine's Verilator model (built on first use)."""
    log = Path(tempfile.mkdtemp(prefix="tritium-build-")) / "build.log"
    started = time.perf_counter()
    runner, build_dir = build(engine_factory, params, design=design_name(params),
                              simulator="verilator", log_file=log, status=status,
                              extra_sources=extra_sources(params),
                              label=f"the engine of {Path(params['model']).name}")
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


def generate(console, params: dict, prompt: list[int], *, text=None, count: int, temperature: float = 0.0,
             top_k=None, seed: int = 0, check: bool = False) -> int:
    """``tritium sim generate``: the engine of ``params`` generating ``count`` tokens after
    ``prompt`` in Verilator, echoed as text when ``text`` (the prompt's) is given, else printed as
    ids; with ``check``, against the integer model's tokens; then cycles per token by phase.
    Returns the exit code: 1 when the tokens differ or the engine flagged an error."""
    from rich.table import Table

    from fpga.console import status
    from hw.engine import EngineSizes, Phase

    with status(console) as say:
        built = build_engine(params, say)
    console.print(f"[dim]engine {', '.join(f'{k} {params[k]}' for k in EngineSizes.names())}: Verilator model "
                  f"ready in {built[2]:.0f} s[/dim]")
    if text is not None:
        console.print(f"[bold]{text}[/bold]", end="")
    run = dict(prompt=prompt, count=count, temperature=temperature, top_k=top_k, seed=seed)
    [result] = run_engine(params, [run], echo=text is not None, built=built)
    if text is None:
        console.print(" ".join(map(str, result["tokens"])))
    if check:
        from model.checkpoint import load_weights
        from model.integer import IntegerModel

        want = IntegerModel(load_weights(params["model"])).generate(
            prompt, count, temperature=temperature, seed=seed, top_k=top_k)
        same = want == result["tokens"]
        console.print(f"integer model: {'the same tokens' if same else 'DIFFERENT tokens: ' + str(want)}")
        if not same:
            return 1
    table = Table(title="engine clock cycles per token (Verilator)")
    columns = {f"prompt: layers ({len(prompt)} tokens)": {k: v / len(prompt) for k, v in
                                                          result["prompt"].items()}}
    if count >= 2:
        columns[f"decode: layers + LM head (positions {len(prompt)}–{len(prompt) + count - 2})"] = \
            per_token_counters(result)
    table.add_column("")
    for name in columns:
        table.add_column(name, justify="right")
    for key in ("cycles", *(p.name.lower() for p in Phase)):
        table.add_row("all" if key == "cycles" else key, *(f"{c[key]:,.0f}" for c in columns.values()))
    console.print(table)
    total = result["prompt"]["cycles"] + result["decode"]["cycles"]
    console.print(f"[dim]{total:,} cycles simulated in {result['seconds']:.1f} s: "
                  f"{total / result['seconds']:,.0f} cycles/s.[/dim]")
    if result["error"] or result["full"]:
        console.print("[red]the engine flagged " + ("an error" if result["error"] else
                      "a full context") + "[/red]")
        return 1
    return 0
