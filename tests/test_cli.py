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


def test_unencodable_prompt_characters_are_named(demo_model, capsys):
    assert main(["generate", "--checkpoint", str(demo_model), "--prompt", "héllo ☃", "-n", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("tritium generate: error: the model's tokenizer has no token for 'é', "
                            "'☃' in the prompt; leave them out or replace them\n")
    assert captured.out == ""


def test_chat_refuses_an_unencodable_prompt_before_the_port(tmp_path, capsys):
    assert main(["chat", "--port", str(tmp_path / "none"), "--prompt", "naïve"]) == 2
    assert capsys.readouterr().err == ("tritium chat: error: the model's tokenizer has no token for "
                                       "'ï' in the prompt; leave them out or replace them\n")


def test_a_missing_serial_port_is_one_line_naming_the_ports_there(tmp_path, monkeypatch, capsys):
    import serial.tools.list_ports

    class Found:
        def __init__(self, device):
            self.device = device

    monkeypatch.setattr(serial.tools.list_ports, "comports",
                        lambda: [Found("/dev/ttyUSB1"), Found("/dev/ttyACM0")])
    port = tmp_path / "ttyUSB9"
    assert main(["chat", "--port", str(port), "--prompt", "ROMEO:"]) == 2
    assert capsys.readouterr().err == (f"tritium chat: error: cannot open the serial port {port} (No "
                                       "such file or directory); serial ports here: /dev/ttyACM0, "
                                       "/dev/ttyUSB1\n")


class FakeBoard:
    """A serial port to a board that answers STATUS, RESET and PROMPT, sends ``tokens`` tokens of
    a generation and then goes silent (``fail``: its reads raise, as pyserial's do when a board is
    unplugged)."""

    def __init__(self, vocab, context, tokens=2, fail=False):
        from hw.protocol import Request, Response, frame

        self.vocab, self.context, self.tokens, self.fail = vocab, context, tokens, fail
        self.out, self.position, self.silent = bytearray(), 0, False
        self.Request, self.Response, self.frame = Request, Response, frame

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def write(self, data):
        import struct

        kind, R = data[1], self.Response
        if kind == self.Request.STATUS:
            self.out += self.frame(R.STATUS, struct.pack("<HHBHHI", self.position, 0, 0, self.vocab,
                                                          self.context, 0))
        elif kind == self.Request.RESET:
            self.position = 0
            self.out += self.frame(R.OK, struct.pack("<H", 0))
        elif kind == self.Request.PROMPT:
            self.position += data[2] // 2
            self.out += self.frame(R.OK, struct.pack("<H", self.position))
        elif kind == self.Request.GENERATE:
            for token in range(1, self.tokens + 1):
                self.out += self.frame(R.TOKEN, struct.pack("<H", token))
            self.silent = True
        return len(data)

    def read(self, size):
        import time

        import serial

        if self.out:
            data, self.out = bytes(self.out[:size]), self.out[size:]
            return data
        if self.silent and self.fail:
            raise serial.SerialException("device reports readiness to read but returned no data "
                                         "(device disconnected or multiple access on port?)")
        time.sleep(0.005)
        return b""


@pytest.mark.parametrize("fail, message", [
    (False, "no response from the board on /dev/ttyFAKE within 0.3 s"),
    (True, "reading from /dev/ttyFAKE failed: device reports readiness to read but returned no "
           "data (device disconnected or multiple access on port?)"),
], ids=["silent", "unplugged"])
def test_a_board_lost_mid_stream_is_one_line(fail, message, monkeypatch, capsys):
    import serial

    from model import paths
    from model.tokenizer import load_tokenizer

    vocab = load_tokenizer(paths.MODELS / "ulx3s").get_vocab_size()
    monkeypatch.setattr(serial, "Serial", lambda name, baud, timeout: FakeBoard(vocab, 256, fail=fail))
    assert main(["chat", "--port", "/dev/ttyFAKE", "--prompt", "ROMEO:", "-n", "8",
                 "--timeout", "0.3"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"tritium chat: error: {message}\n"
    assert captured.out.startswith("ROMEO:") and captured.out.endswith("\n")    # the line is ended


def test_a_virtual_board_that_does_not_start_is_one_line(monkeypatch, capsys):
    from fpga.host import virtual
    from sim.virtual_board import BoardStartError

    def fail(params, status=None, netlist=None):
        raise BoardStartError("the virtual board did not start (simulator exited); see /tmp/run")

    monkeypatch.setattr(virtual, "VirtualBoard", fail)
    assert main(["chat", "--sim", "--prompt", "ROMEO:", "-n", "4"]) == 2
    assert capsys.readouterr().err == ("tritium chat: error: the virtual board did not start "
                                       "(simulator exited); see /tmp/run\n")


def test_cols_is_gone(capsys):
    for command in (["sim", "generate", "--ids", "1"], ["verilog", "engine", "-o", "x.v"]):
        with pytest.raises(SystemExit) as exit:
            main([*command, "--cols", "2"])
        assert exit.value.code == 2
        assert "unrecognized arguments: --cols 2" in capsys.readouterr().err


def test_board_choices_come_from_the_boards(monkeypatch, capsys):
    from fpga.boards import BOARDS

    monkeypatch.setitem(BOARDS, "test-board", BOARDS["icebreaker"])
    monkeypatch.setenv("COLUMNS", "1000")          # help on one line
    for command in ("build", "flash", "chat", "explore"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        assert ", ".join(BOARDS) in shown and "ulx3s-25f" not in shown, command
    with pytest.raises(SystemExit) as exit:
        main(["build", "--board", "ulx3s-25f"])
    assert exit.value.code == 2
    assert "invalid choice: 'ulx3s-25f'" in capsys.readouterr().err


def test_a_netlist_needs_the_simulator(capsys):
    assert main(["chat", "--netlist", "--board", "ulx3s-45f", "--prompt", "A", "--port", "/dev/null"]) == 2
    assert "--netlist simulates the board's netlist: it needs --sim" in capsys.readouterr().err


def test_fuzzing_needs_a_burst(capsys):
    assert main(["bench", "fuzz", "--bursts", "0"]) == 2
    assert "--bursts must be at least 1, not 0" in capsys.readouterr().err


def test_a_board_speaking_another_model_is_one_line(monkeypatch, capsys):
    import serial

    from model import paths
    from model.tokenizer import load_tokenizer

    vocab = load_tokenizer(paths.MODELS / "ulx3s").get_vocab_size()
    monkeypatch.setattr(serial, "Serial", lambda name, baud, timeout: FakeBoard(vocab + 5, 256))
    assert main(["chat", "--port", "/dev/ttyFAKE", "--prompt", "ROMEO:", "-n", "8", "--timeout", "0.3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tritium chat: error: the board's model has {vocab + 5} tokens") and \
        err.endswith("a different model\n") and err.count("\n") == 1, err


def test_a_bench_docs_folder_that_is_not_there_is_one_line(tmp_path, capsys):
    assert main(["bench", "vector", "--docs", str(tmp_path / "missing")]) == 1
    out = capsys.readouterr().out
    assert "no such directory" in out and "Traceback" not in out


def test_a_plain_bench_writes_its_section(tmp_path, capsys):
    """The benches with nothing but --docs share one dispatch: vector writes its section there."""
    assert main(["bench", "vector", "--docs", str(tmp_path)]) == 0
    assert "<!-- bench:vector -->" in (tmp_path / "benchmarks.md").read_text()


def test_the_vector_engine_runs_in_simulation_only(capsys):
    assert main(["chat", "--engine", "vector", "--board", "ulx3s-45f", "--prompt", "A",
                 "--port", "/dev/null"]) == 2
    error = capsys.readouterr().err
    assert "--engine vector runs in simulation only: it needs --sim (and no --netlist)" in error


def test_a_build_time_limit_must_be_positive(tmp_path, capsys):
    assert main(["build", "--board", "ulx3s-45f", "--engine", "vector", "--time-limit", "0",
                 "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err == ("tritium build: error: --time-limit is in minutes and must be "
                                       "positive, not 0\n")
    assert not any(tmp_path.iterdir())
