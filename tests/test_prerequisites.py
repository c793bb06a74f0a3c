"""The set-up's check of what pip cannot install (sim/prerequisites.py), run as the Makefile runs
it — the system's python3, before any virtual environment — on a PATH without a compiler."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from model import paths
from sim import harness
from sim.prerequisites import MissingPrerequisite, missing_compiler

SCRIPT = paths.REPO / "sim" / "prerequisites.py"


def bare_path(tmp_path: Path, keep=("make",)) -> str:
    """A PATH directory holding only ``keep`` (links to the real tools): no C++ compiler."""
    folder = tmp_path / "bin"
    folder.mkdir(parents=True)
    for name in keep:
        found = subprocess.run(["which", name], capture_output=True, text=True).stdout.strip()
        if found:
            (folder / name).symlink_to(found)
    return str(folder)


def run_check(path: str, *args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, "PATH": path})


def test_a_missing_compiler_stops_with_one_line_naming_the_package(tmp_path):
    result = run_check(bare_path(tmp_path))
    assert result.returncode == 1
    required = [line for line in result.stderr.splitlines() if line.startswith("prerequisite missing")]
    assert required == ["prerequisite missing: no C++ compiler (c++) found: Verilator needs one to "
                        "build its model of the design; install it with: sudo apt-get install "
                        "build-essential"]
    assert "build-essential" in run_check(bare_path(tmp_path / "again"), "--packages").stdout.split()


def test_a_missing_make_is_named(tmp_path):
    compiler = subprocess.run(["which", "c++"], capture_output=True, text=True).stdout.strip()
    if not compiler:
        pytest.skip("no c++ here")
    assert missing_compiler(bare_path(tmp_path, keep=("c++",))) == (
        "make not found: Verilator's build runs it; install it with: sudo apt-get install build-essential")


@pytest.mark.skipif(missing_compiler() is not None, reason="this machine lacks a compiler")
def test_everything_present_passes():
    result = run_check(os.environ["PATH"])
    assert result.returncode == 0
    assert "prerequisite missing" not in result.stderr
    assert "build-essential" not in run_check(os.environ["PATH"], "--packages").stdout


def test_a_verilator_build_without_a_compiler_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", bare_path(tmp_path))
    with pytest.raises(MissingPrerequisite, match=r"^no C\+\+ compiler .* sudo apt-get install "
                                                  r"build-essential$"):
        harness.build(lambda: None, {}, design="never", simulator="verilator")


def test_tritium_sim_without_a_compiler_says_what_to_install(tmp_path, monkeypatch, capsys):
    from fpga.cli import main

    monkeypatch.setenv("PATH", bare_path(tmp_path))
    assert main(["sim", "generate", "--model", str(paths.MODELS / "small"), "--prompt", "RO",
                 "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tritium sim: error: no C++ compiler") and err.count("\n") == 1


@pytest.mark.skipif(missing_compiler() is not None, reason="this machine lacks a compiler")
@pytest.mark.skipif("verilator" not in harness.available_simulators(), reason="no Verilator")
def test_a_verilator_build_needs_no_python_command(tmp_path, monkeypatch):
    """The wheel's verilated.mk runs its includer (a design in one C++ file) with ``python``, which
    Debian lacks: the harness has it run by this Python. A ``python`` that fails is put first on
    PATH; the build must not call it."""
    from hw.quantizer import AbsmaxQuantizer

    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python").write_text("#!/bin/sh\necho python called >&2\nexit 97\n")
    (folder / "python").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(harness, "BUILD_ROOT", tmp_path / "build")
    _, build_dir = harness.build(AbsmaxQuantizer, dict(width=8, lanes=1, max_length=12),
                                 design="quantizer_w8l1", simulator="verilator",
                                 log_file=tmp_path / "build.log")
    assert (build_dir / "quantizer_w8l1").exists()


def test_a_missing_venv_module_stops_and_flashing_libraries_are_a_note(monkeypatch, capsys):
    """python3-venv stops the set-up; libusb-1.0 and libftdi1 (flashing only: the suite flashes
    with a fake openFPGALoader) are a note with exit status 0."""
    import ctypes.util
    import importlib.util

    from sim import prerequisites

    monkeypatch.setattr(prerequisites, "REQUIRED", ((lambda: None, "build-essential"),   # a compiler
                                                    (prerequisites.missing_venv, "python3-venv")))
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert prerequisites.main([]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "note: libusb-1.0 not found: only tritium flash needs it (openFPGALoader); install it with: "
        "sudo apt-get install libusb-1.0-0",
        "note: libftdi1 not found: only tritium flash needs it (openFPGALoader); install it with: "
        "sudo apt-get install libftdi1-2"]
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ensurepip" else find_spec(name, *a))
    assert prerequisites.main([]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "prerequisite missing: python3's venv module (with ensurepip) is missing: make creates .venv "
        "with it; install it with: sudo apt-get install python3-venv")
    assert prerequisites.main(["--packages"]) == 0
    assert capsys.readouterr().out.split() == ["python3-venv", "libusb-1.0-0", "libftdi1-2"]
