"""The CPU baseline's C program (fpga/bench/bitnet_cpu.c) is the float model: its greedy tokens
equal ``BitNetModel.generate``'s on random models of both activations, tied and untied, MHA and
GQA, and on the shipped ones; a bad model file gets a one-line error."""

import subprocess

import pytest

from fpga.bench.cpu import c_compiler, compile_program, run_program, write_model_file
from model import paths
from model.bitnet import BitNetModel
from model.checkpoint import load_weights
from model.integer import tiny_model

pytestmark = pytest.mark.skipif(c_compiler() is None, reason="no C compiler")


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return compile_program(tmp_path_factory.mktemp("cpu"))


@pytest.mark.parametrize("seed, overrides", [
    (1, {}),
    (2, dict(hidden_act="silu", tie_word_embeddings=False, num_attention_heads=4, num_key_value_heads=2,
             hidden_size=32, num_hidden_layers=2, max_position_embeddings=24)),
    (3, dict(hidden_act="relu2", num_attention_heads=3, num_key_value_heads=3, hidden_size=24,
             vocab_size=37, max_position_embeddings=40)),
], ids=["relu2-tied-gqa", "silu-untied-gqa-2-layers", "relu2-mha"])
def test_c_program_gives_the_float_models_tokens(program, seed, overrides, tmp_path):
    print(f"seed {seed}")
    tiny_model(tmp_path, seed, **overrides)
    weights = load_weights(tmp_path / "model")
    write_model_file(weights, tmp_path / "model.bin")
    cfg = weights.config
    prompt = [i % cfg.vocab_size for i in range(3, 6)]
    count = cfg.max_position_embeddings - len(prompt) + 1
    tokens, seconds = run_program(program, tmp_path / "model.bin", prompt, count)
    assert tokens == BitNetModel(weights).generate(prompt, count) and seconds > 0


@pytest.mark.parametrize("name", ["ulx3s", "small"])
def test_c_program_on_the_shipped_models(program, name, tmp_path):
    weights = load_weights(paths.MODELS / name)
    write_model_file(weights, tmp_path / "model.bin")
    prompt = [0, 21, 1]
    tokens, _ = run_program(program, tmp_path / "model.bin", prompt, 24)
    assert tokens == BitNetModel(weights).generate(prompt, 24)


def test_bad_model_file_is_one_line(program, tmp_path):
    (tmp_path / "model.bin").write_bytes(b"TRI1\x01")
    done = subprocess.run([str(program), str(tmp_path / "model.bin"), "4", "1"], capture_output=True,
                          text=True)
    assert done.returncode == 1 and done.stderr.strip() == "bitnet_cpu: bad header"
