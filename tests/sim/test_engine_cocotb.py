"""The whole Engine on Verilator (cocotb, sim/tb_engine.py): the shipped ``small`` model and a
random model of an unusual shape generate exactly IntegerModel.generate's tokens, greedy and
sampled, from several prompts; the first position's intermediate values are compared step by step."""

import json
import os
from pathlib import Path

import pytest

from model import paths
from fpga.bench.explore import CYCLE_TOLERANCE
from fpga.perf.cycle_model import mean_cycles
from fpga.simulate import per_token_counters
from hw.engine import EngineSizes
from model.checkpoint import load_weights, random_checkpoint
from model.config import BitNetConfig
from model.tokenizer import load_tokenizer
from sim.engine_trace import engine_factory
from sim.harness import BUILD_ROOT, available_simulators, run

SEED = int(os.environ.get("TRITIUM_SEED", "5"))

pytestmark = pytest.mark.skipif("verilator" not in available_simulators(), reason="no Verilator")

# An unusual shape: SiLU, untied embeddings, 3 query heads on 1 kv head, an odd vocabulary,
# 3 layers, array 3×4 with 2 vector lanes, 8 attention lanes and 16 LM-head lanes.
ODD_CONFIG = dict(vocab_size=37, hidden_size=48, intermediate_size=80, num_hidden_layers=3,
                  num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=48,
                  hidden_act="silu", tie_word_embeddings=False, rope_theta=500.0)


def odd_model() -> Path:
    """The random model, written once under build/ (a fixed path keeps the Verilator build cached)."""
    path = BUILD_ROOT / "models" / "odd-silu"
    if not (path / "config.json").exists():
        random_checkpoint(path, BitNetConfig(**ODD_CONFIG), seed=3)
    return path


def run_bench(params: dict, runs: list, tmp_path, design=None, extra_sources=()) -> list:
    """The runs on the engine in Verilator (tokens checked in the bench); each run's counters."""
    result = tmp_path / "counters.json"
    run(engine_factory, params, design=design or "engine_" + Path(params["model"]).name.replace("-", "_"),
        bench="sim.tb_engine", testcase="check", simulator="verilator", seed=SEED, test_dir=tmp_path,
        extra_env={"TB_JOB": json.dumps({"runs": runs, "result": str(result)})},
        extra_sources=extra_sources)
    return json.loads(result.read_text())["runs"]


@pytest.mark.slow
def test_small_model_generates_the_integer_models_tokens(tmp_path):
    model = paths.MODELS / "small"
    config = load_weights(model).config
    tokenizer = load_tokenizer(model)

    def encode(text):
        return tokenizer.encode(text).ids
    params = dict(model=str(model), taps=True, k_max=8, **EngineSizes.default(config).as_dict())
    runs = [dict(prompt=encode("ROMEO:"), count=16),
            dict(prompt=encode("First Citizen:\n"), count=12, temperature=0.8, top_k=5, seed=SEED),
            dict(prompt=encode("KING"), count=12, temperature=1.0, seed=SEED + 1)]
    run_bench(params, runs, tmp_path)


@pytest.mark.slow
def test_odd_random_model_generates_the_integer_models_tokens(tmp_path):
    params = dict(model=str(odd_model()), taps=True, k_max=4, rows=3, simd=4, lanes=2,
                  attention_lanes=8, head_lanes=16)
    runs = [dict(prompt=[5, 36, 0], count=20),
            dict(prompt=[1], count=17, temperature=0.7, top_k=4, seed=SEED),
            dict(prompt=[30, 2, 2, 9, 17], count=10, temperature=1.5, seed=SEED + 2)]
    counters = run_bench(params, runs, tmp_path)
    # the cycle model (fpga/perf/cycle_model.py) on a shape it was never compared with: the greedy run
    config = load_weights(odd_model()).config
    greedy, prompt = counters[0], len(runs[0]["prompt"])
    prefill = mean_cycles(config, params, range(prompt), decode=False)["cycles"]
    decode = mean_cycles(config, params, range(prompt, prompt + runs[0]["count"] - 1))["cycles"]
    measured_decode = per_token_counters(greedy)["cycles"]
    assert prefill == pytest.approx(greedy["prompt"]["cycles"] / prompt, rel=CYCLE_TOLERANCE)
    assert decode == pytest.approx(measured_decode, rel=CYCLE_TOLERANCE)


@pytest.mark.slow
def test_weights_from_spi_flash_into_spram(tmp_path):
    """The UP5K way: the weights in SPRAM (SB_SPRAM256KA instances, sim/SB_SPRAM256KA.v here),
    filled at boot from a SPI flash (an Amaranth model in the same Verilator build)."""
    params = dict(model=str(odd_model()), taps=True, k_max=4, rows=3, simd=4, lanes=2,
                  attention_lanes=8, head_lanes=16, flash_offset=4096, spram=True)
    runs = [dict(prompt=[7, 7, 1], count=12, temperature=0.9, top_k=3, seed=SEED)]
    run_bench(params, runs, tmp_path, design="engine_odd_silu_flash",
              extra_sources=[paths.REPO / "sim" / "SB_SPRAM256KA.v"])
