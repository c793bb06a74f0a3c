"""The SoC through its UART pins (cocotb, sim/tb_soc.py), and ``tritium chat --sim``: the tokens
that come back over the byte protocol are exactly IntegerModel.generate's."""

import json
import os

import pytest

from model import paths
from fpga.boards import BOARDS
from fpga.cli import main
from model.checkpoint import load_weights
from model.integer import IntegerModel
from model.tokenizer import load_tokenizer
from sim.harness import available_simulators, run
from sim.virtual_board import soc_factory, tiny_soc_params

SEED = int(os.environ.get("TRITIUM_SEED", "5"))


@pytest.mark.parametrize("simulator", available_simulators())
def test_protocol_over_the_uart(simulator, tmp_path):
    params = tiny_soc_params()
    run(soc_factory, params, design="soc", bench="sim.tb_soc", testcase="protocol",
        simulator=simulator, seed=SEED, test_dir=tmp_path)


@pytest.mark.skipif("verilator" not in available_simulators(), reason="no Verilator")
def test_fuzzed_frames_neither_wedge_the_soc_nor_change_its_tokens(tmp_path):
    """A short seeded slice of the fuzzer (``tritium bench fuzz`` runs the long one)."""
    params = tiny_soc_params()
    result = tmp_path / "fuzz.json"
    job = {"seed": SEED, "bursts": 30, "result": str(result)}
    run(soc_factory, params, design="soc", bench="sim.tb_soc", testcase="fuzz", simulator="verilator",
        seed=SEED, test_dir=tmp_path, extra_env={"TB_FUZZ": json.dumps(job)})
    fuzzed = json.loads(result.read_text())
    assert fuzzed["bursts"] == 30 and fuzzed["frames"] >= 30, fuzzed
    assert {"request", "crc", "truncated", "reset"} <= set(fuzzed["steps"]), fuzzed


@pytest.mark.skipif("verilator" not in available_simulators(), reason="no Verilator")
def test_chat_sim_generates_the_integer_models_tokens(capfd):
    model_dir = paths.MODELS / "small"
    prompt = "ROMEO:"
    expected = IntegerModel(load_weights(model_dir)).generate(
        load_tokenizer(model_dir).encode(prompt).ids, 12, temperature=0.8, top_k=5, seed=3)
    assert main(["chat", "--sim", "--board", "ulx3s-45f", "--prompt", prompt, "-n", "12",
                 "--temperature", "0.8", "--top-k", "5", "--seed", "3", "--ids"]) == 0
    out = capfd.readouterr().out          # the simulator's own output too (a subprocess)
    ids = [int(t) for t in out.strip().splitlines()[-1].split()]
    assert ids == expected, out
    # off a terminal: a line per phase, and the simulator's own output (its $finish) in a log
    assert "converting the SoC to Verilog\nbuilding the Verilator model" in out, out
    assert "$finish" not in out, out


@pytest.mark.slow
@pytest.mark.skipif("verilator" not in available_simulators(), reason="no Verilator")
def test_chat_sim_on_the_vector_engine(capfd):
    """The SoC with the engine on the shared vector unit (issue 18) at the 45F's sizes: sampled
    tokens over the byte protocol, checked against the integer model (--check)."""
    assert main(["chat", "--sim", "--engine", "vector", "--board", "ulx3s-45f", "--prompt", "ROMEO:",
                 "-n", "6", "--temperature", "0.8", "--top-k", "5", "--seed", "3", "--check"]) == 0
    assert "the same tokens as the integer model" in capfd.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif("verilator" not in available_simulators(), reason="no Verilator")
def test_conversation_continues_the_context():
    """Two turns on the virtual board: the second continues the first (its last token and the new
    text), exactly as the integer model would on the whole sequence; then a reset when it fills."""
    from fpga.host.chat import Conversation
    from fpga.host.virtual import board_soc_params, open_board

    model_dir = paths.MODELS / "small"
    model, tokenizer = IntegerModel(load_weights(model_dir)), load_tokenizer(model_dir)
    # the SoC chat --sim builds for the 45F: one cached Verilator build
    with open_board(board_soc_params(BOARDS["ulx3s-45f"], model_dir), timeout=120) as link:
        assert link.status()["context"] == model.config.max_position_embeddings == 128
        chat = Conversation(link, tokenizer, 128)
        first = chat.turn("KING:", 10, temperature=0.7, top_k=4, seed=9)
        second = chat.turn("\nQUEEN:", 10, temperature=0.7, top_k=4, seed=9)
        ids = tokenizer.encode("KING:").ids
        assert first == model.generate(ids, 10, temperature=0.7, top_k=4, seed=9)
        whole = ids + first + tokenizer.encode("\nQUEEN:").ids
        assert second == model.generate(whole, 10, temperature=0.7, top_k=4, seed=9)
        assert chat.position == len(whole) + 9
        third = chat.turn("A" * 100, 20)           # does not fit after the others: a reset
        assert third == model.generate(tokenizer.encode("A" * 100).ids, 20)
