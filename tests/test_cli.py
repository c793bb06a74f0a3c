"""The ``tritium`` command line, run in-process through its ``main``."""

import pytest

from fpga.cli import main


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "demo"
    assert main(["random-model", str(path), "--seed", "1"]) == 0
    return path


def test_inspect(demo_model, capsys):
    assert main(["inspect", str(demo_model)]) == 0
    out = capsys.readouterr().out
    assert "ternary weights" in out and "ternary zero fraction" in out
    # 4 layers x (q, o: 128x128; k, v: 64x128; gate, up, down: 384x128)
    assert "786,432" in out


@pytest.mark.parametrize("integer", [False, True], ids=["float", "integer"])
def test_generate_text(demo_model, integer, capsys):
    args = ["generate", "--checkpoint", str(demo_model), "--prompt", "ROMEO:", "-n", "12"]
    assert main(args + (["--integer"] if integer else [])) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and "12 tokens" in out


def test_generate_ids_with_sampling(demo_model, capsys):
    args = ["generate", "--checkpoint", str(demo_model), "--ids", "1,2,3", "-n", "5",
            "--temperature", "0.8", "--top-k", "5", "--seed", "3", "--integer"]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[0] == first
    assert len(first.split()) == 5


@pytest.mark.parametrize("text", [[], ["--validation"]], ids=["random", "validation"])
def test_compare(demo_model, text, capsys):
    assert main(["compare", "--checkpoint", str(demo_model), "--positions", "32"] + text) == 0
    out = capsys.readouterr().out
    assert "top-1 agreement" in out and "positions" in out


def test_errors_exit_nonzero_with_one_line(tmp_path, demo_model, capsys):
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tritium inspect: error:") and "not a checkpoint directory" in err
    assert main(["generate", "--checkpoint", str(demo_model), "--ids", "99", "-n", "2"]) == 2
    assert "outside the vocabulary" in capsys.readouterr().err


@pytest.mark.parametrize("block, args, module", [
    ("array", ["--rows", "2", "--cols", "1", "--simd", "4", "--k-max", "64"], "ternary_array"),
    ("quantizer", ["--width", "16", "--lanes", "2", "--max-length", "8"], "absmax_quantizer"),
    ("scale-unit", ["--exp-bits", "10", "--int-bits", "40"], "scale_unit"),
    ("rms-quantizer", ["--width", "32", "--lanes", "2", "--max-length", "64"], "rms_quantizer"),
    ("sampler", ["--vocab-max", "65", "--k-max", "8"], "sampler"),
    ("attention", ["--head-dim", "16", "--lanes", "4", "--max-positions", "32"], "attention_head"),
])
def test_verilog(block, args, module, tmp_path, capsys):
    out = tmp_path / f"{block}.v"
    assert main(["verilog", block, *args, "-o", str(out)]) == 0
    text = out.read_text()
    assert f"module {module}(" in text and "endmodule" in text
    table = capsys.readouterr().out
    assert "o__payload" in table and "clk" in table


def test_verilog_refuses_bad_parameters_in_one_line(tmp_path, capsys):
    out = tmp_path / "x.v"
    assert main(["verilog", "array", "--simd", "12", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == ("tritium verilog: error: simd must be a power of two (adder tree), not 12; "
                   "8 or 16 would fit\n")
    assert not out.exists()
