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
    env = {k: v for k, v in os.environ.items() if k != "CXX"}
    env["PATH"] = path
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env)


def test_a_missing_compiler_stops_with_one_line_naming_the_package(tmp_path):
    result = run_check(bare_path(tmp_path))
    assert result.returncode == 1
    required = [line for line in result.stderr.splitlines() if line.startswith("prerequisite missing")]
    assert required == ["prerequisite missing: no C++ compiler (g++ or c++ or clang++) found: Verilator "
                        "needs one to build its model of the design; install it with: sudo apt-get "
                        "install build-essential"]
    assert "build-essential" in run_check(bare_path(tmp_path / "again"), "--packages").stdout.split()


def test_a_missing_make_is_named(tmp_path):
    compiler = subprocess.run(["which", "g++"], capture_output=True, text=True).stdout.strip()
    if not compiler:
        pytest.skip("no g++ here")
    assert missing_compiler(bare_path(tmp_path, keep=("g++",))) == (
        "make not found: Verilator's build runs it; install it with: sudo apt-get install build-essential")


@pytest.mark.skipif(missing_compiler() is not None, reason="this machine lacks a compiler")
def test_everything_present_passes():
    result = run_check(os.environ["PATH"])
    assert result.returncode == 0
    assert "prerequisite missing" not in result.stderr
    assert "build-essential" not in run_check(os.environ["PATH"], "--packages").stdout


def test_a_verilator_build_without_a_compiler_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", bare_path(tmp_path))
    with pytest.raises(MissingPrerequisite, match=r"^no C\+\+ compiler .* sudo apt-get install "
                                                  r"build-essential$"):
        harness.build(lambda: None, {}, design="never", simulator="verilator")


def test_tritium_sim_without_a_compiler_says_what_to_install(tmp_path, monkeypatch, capsys):
    from fpga.cli import main

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", bare_path(tmp_path))
    assert main(["sim", "generate", "--model", str(paths.MODELS / "small"), "--prompt", "RO",
                 "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tritium sim: error: no C++ compiler") and err.count("\n") == 1
