"""cocotb benches for the whole Engine (hw/engine.py) on its generated Verilog.

``TB_PARAMS`` (JSON): the engine (``model`` directory, ``rows``, ``simd``, ``lanes``, ``k_max``,
``taps``). ``TB_JOB`` (JSON): ``runs``, a list of ``{"prompt": [ids], "count": n, "temperature": t,
"top_k": k, "seed": s}``; ``result`` a file for the measurements; ``echo`` to print each token's
text as it arrives (``tritium sim generate``).

- ``check``: each run from position 0 generates exactly ``IntegerModel.generate``'s tokens; with
  taps, every intermediate value of the first position is compared with the model's trace (a
  mismatch names the layer, the step and the element).
- ``generate``: the runs, measured: cycles for the prompt and per generated token, by phase.

Only the first position's taps are watched cycle by cycle; otherwise the bench waits on the
output's valid edges, so the simulation runs at Verilator speed.
"""

import json
import os
import sys
import time
from pathlib import Path

import cocotb
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

from hw.engine import Command, Phase, command
from sim.engine_trace import compare, engine_factory, group_taps, model_trace

PARAMS = json.loads(os.environ.get("TB_PARAMS", "{}"))
JOB = json.loads(os.environ.get("TB_JOB", "{}"))


class EngineBench:
    def __init__(self, dut):
        self.dut = dut
        self.engine, self.model = engine_factory(**PARAMS, with_model=True)
        members = self.engine.signature.members
        self.command_layout = members["command"].signature.members["payload"].shape
        self.o_layout = members["o"].signature.members["payload"].shape
        self.tap_layout = members["tap"].signature.members["payload"].shape if PARAMS.get("taps") else None
        self.phase_layout = members["phase_cycles"].shape

    async def start(self):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.command__valid.value = 0
        dut.o__ready.value = 1
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await self.idle()          # an engine that loads its weights from flash is busy until then

    async def send(self, payload: dict):
        """One command, then wait until the engine is idle again."""
        dut = self.dut
        await FallingEdge(dut.clk)
        dut.command__payload.value = self.command_layout.const(payload).as_bits()
        dut.command__valid.value = 1
        while True:
            await RisingEdge(dut.clk)
            if dut.command__ready.value:
                break
        await FallingEdge(dut.clk)
        dut.command__valid.value = 0

    async def idle(self):
        """Until ``busy`` is low (waiting on its edge, not cycle by cycle)."""
        await RisingEdge(self.dut.clk)
        if self.dut.status__busy.value:
            await FallingEdge(self.dut.status__busy)
        await FallingEdge(self.dut.clk)

    def counters(self) -> dict:
        phases = data.Const(self.phase_layout, int(self.dut.phase_cycles.value))
        return {"cycles": int(self.dut.status__cycles.value),
                **{p.name.lower(): int(phases[p]) for p in Phase}}

    async def watch_taps(self, taps: list):
        """Record taps cycle by cycle until the engine is idle again (one TOKEN command)."""
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            if dut.tap__valid.value:
                tap = data.Const(self.tap_layout, int(dut.tap__payload.value))
                taps.append((int(tap.pc), int(tap.kind), [int(v) for v in tap.data],
                             int(tap.mant), int(tap.exp)))
            if not dut.status__busy.value and taps:
                return

    async def generate(self, run: dict, echo=None) -> dict:
        """One run from position 0: the prompt, then ``count`` tokens; tokens and cycle counts."""
        dut = self.dut
        await self.send(command(Command.RESET))
        first = self.counters()
        for token in run["prompt"]:
            await self.send(command(Command.TOKEN, token=token))
            await self.idle()
        prompt = self.counters()
        tokens, times = [], []

        async def collect():
            while len(tokens) < run["count"]:
                await RisingEdge(dut.o__valid)
                await FallingEdge(dut.clk)
                if dut.o__valid.value:
                    tokens.append(int(data.Const(self.o_layout, int(dut.o__payload.value)).token))
                    times.append(self.counters())
                    if echo:
                        echo(tokens[-1])
                    await RisingEdge(dut.clk)

        collector = cocotb.start_soon(collect())
        await self.send(command(Command.GENERATE, count=run["count"],
                                temperature=run.get("temperature", 0.0), top_k=run.get("top_k"),
                                seed=run.get("seed", 0)))
        await collector
        await self.idle()
        end = self.counters()
        # token i > 0 costs the layers at position len(prompt) + i − 1 and an LM head
        return {"tokens": tokens, "token_counters": [{k: t[k] - prompt[k] for k in t} for t in times],
                "prompt": {k: prompt[k] - first[k] for k in first},
                "decode": {k: end[k] - prompt[k] for k in first},
                "error": int(dut.status__error.value), "full": int(dut.status__full.value)}


@cocotb.test()
async def check(dut):
    """Generated tokens equal IntegerModel.generate's; the first position's taps equal its trace."""
    bench = EngineBench(dut)
    await bench.start()
    model = bench.model
    results = []
    for number, run in enumerate(JOB["runs"]):
        if number == 0 and bench.tap_layout is not None:
            taps = []
            await bench.send(command(Command.RESET))
            watcher = cocotb.start_soon(bench.watch_taps(taps))
            await bench.send(command(Command.TOKEN, token=run["prompt"][0]))
            await watcher
            steps = group_taps(bench.engine, taps)
            expected = model_trace(model, model.new_cache(), run["prompt"][0])
            del expected[(0, "norm")]          # a prompt token: no LM head
            problems = compare(steps[0], expected, 0)
            assert not problems, "\n".join(problems[:20])
            dut._log.info(f"first position: {len(taps)} taps equal the model's trace "
                          f"({len(expected)} steps)")
        result = await bench.generate(run)
        want = model.generate(run["prompt"], run["count"], temperature=run.get("temperature", 0.0),
                              seed=run.get("seed", 0), top_k=run.get("top_k"))
        dut._log.info(f"run {number}: {len(result['tokens'])} tokens, "
                      f"{result['decode']['cycles'] / max(1, run['count'] - 1):.0f} cycles/token")
        assert result["tokens"] == want, f"run {number}: engine {result['tokens']} != model {want}"
        assert not result["error"], f"run {number}: the engine flagged an error"
        results.append(result)
    if "result" in JOB:          # the counters, for the test to hold the cycle model to
        Path(JOB["result"]).write_text(json.dumps({"runs": results}))


def text_printer(model_dir):
    """A function printing a token's text at once (to the terminal, past cocotb's logging)."""
    from model.tokenizer import load_tokenizer
    tokenizer = load_tokenizer(model_dir)

    def echo(token):
        sys.__stdout__.write(tokenizer.decode([token]))
        sys.__stdout__.flush()
    return echo


@cocotb.test()
async def generate(dut):
    """The runs, measured; results (tokens, cycles by phase, wall time) to JOB["result"]."""
    bench = EngineBench(dut)
    await bench.start()
    echo = text_printer(PARAMS["model"]) if JOB.get("echo") else None
    results = []
    for run in JOB["runs"]:
        start = time.perf_counter()
        result = await bench.generate(run, echo=echo)
        result["seconds"] = time.perf_counter() - start
        results.append(result)
    if echo:
        sys.__stdout__.write("\n")
    with open(JOB["result"], "w") as f:
        json.dump(results, f)
