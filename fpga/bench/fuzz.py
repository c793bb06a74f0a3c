"""``tritium bench fuzz``: the SoC of a tiny random model in Verilator behind its UART, fed seeded
random bursts of frames (:mod:`sim.fuzz`), each followed by a check that it still answers, returns
to an idle empty context on RESET and generates the integer model's tokens (sim/tb_soc.py's
``fuzz``). Reports the frames tried and frames a second; writes its section of docs/benchmarks.md.
A failure names the burst's seed and index and its steps, to replay.
"""

import json
import tempfile
import threading
import time
from pathlib import Path

from model import paths

from . import provenance, write_section


class FuzzFailure(RuntimeError):
    """The SoC wedged, or answered wrongly, after a burst."""


def run_fuzz(bursts: int, seed: int, status=None) -> dict:
    """``bursts`` bursts from ``seed``: the counts of each kind of step, frames (steps that send
    bytes), and the seconds they took (the simulator's build not included)."""
    from sim.harness import build
    from sim.virtual_board import soc_factory, tiny_soc_params

    if bursts < 1:
        raise ValueError(f"--bursts must be at least 1, not {bursts}")

    params = tiny_soc_params()
    test_dir = Path(tempfile.mkdtemp(prefix="tritium-fuzz-"))
    runner, build_dir = build(soc_factory, params, design="soc", simulator="verilator",
                              log_file=test_dir / "build.log", status=status, label="the SoC")
    if status:
        status(f"fuzzing: {bursts} bursts from seed {seed} (simulator output: {test_dir / 'sim.log'})")
    result, progress = test_dir / "result.json", test_dir / "progress"
    job = {"seed": seed, "bursts": bursts, "result": str(result), "progress": str(progress)}
    started = time.perf_counter()
    fuzzing = threading.Thread(target=runner.test, kwargs=dict(
        test_module="sim.tb_soc", testcase="fuzz", hdl_toplevel="soc", build_dir=build_dir,
        test_dir=test_dir, seed=seed, log_file=test_dir / "sim.log",
        extra_env={"TB_PARAMS": json.dumps(params), "COCOTB_LOG_LEVEL": "WARNING",
                   "GPI_LOG_LEVEL": "WARNING", "TB_FUZZ": json.dumps(job)}))
    fuzzing.start()
    while fuzzing.is_alive():
        fuzzing.join(timeout=5)
        if status and progress.exists():
            done = int(progress.read_text() or 0)
            status(f"fuzzing: {done} of {bursts} bursts from seed {seed}, "
                   f"{time.perf_counter() - started:.0f} s (simulator output: {test_dir / 'sim.log'})")
    if not result.exists():
        log = (test_dir / "sim.log").read_text(errors="replace")
        failure = next((line for line in log.splitlines() if "AssertionError" in line), log[-2000:])
        raise FuzzFailure(f"the fuzzed SoC failed: {failure.strip()} (log: {test_dir / 'sim.log'})")
    fuzzed = json.loads(result.read_text())
    fuzzed.update(seed=seed, engine=params["engine"])
    return fuzzed


def markdown(fuzzed: dict, command: str) -> str:
    steps = ", ".join(f"{kind} {n:,}" for kind, n in sorted(fuzzed["steps"].items(), key=lambda kv: -kv[1]))
    return "\n".join([
        "## Fuzzing the SoC's byte protocol", "",
        f"{provenance(command)}; the SoC of a tiny random model (engine {fuzzed['engine']}) in Verilator, "
        "its UART driven bit by bit by sim/tb_soc.py's `fuzz` (bursts from sim/fuzz.py). After each "
        "burst: STATUS answered, RESET back to an idle empty context, then a prompt and a sampled "
        "generation equal to the integer model's.", "",
        "| seed | bursts | frames | frames/s | steps |", "|---|---|---|---|---|",
        f"| {fuzzed['seed']} | {fuzzed['bursts']:,} | {fuzzed['frames']:,} | "
        f"{fuzzed['frames'] / fuzzed['seconds']:,.1f} | {steps} |", "",
        "Frames: the steps that send bytes (requests, damaged, unknown, wrong-length, oversize and "
        "truncated frames, garbage, bytes without a stop bit); pauses and resets are steps too. "
        "Frames a second include the checks after each burst.", ""])


def bench_fuzz(bursts: int, seed: int, docs: Path = paths.DOCS, status=None) -> dict:
    fuzzed = run_fuzz(bursts, seed, status)
    write_section("fuzz", markdown(fuzzed, f"tritium bench fuzz --bursts {bursts} --seed {seed}"),
                  docs / "benchmarks.md")
    return fuzzed
