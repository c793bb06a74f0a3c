"""Gate-level simulation: the SoC as Yosys maps it onto a board's FPGA, simulated with the models of
the vendor's cells, so that a test checks the netlist that becomes the bitstream and not only the
Verilog Amaranth writes (``tritium chat --sim --netlist``, tests/sim/test_netlist_cocotb.py).

A :class:`Netlist` is what ``sim.harness.build`` takes to simulate a design's netlist instead of its
RTL. Yosys synthesizes the design with the board's own script (:func:`fpga.flow.build.soc_script`:
its LUT-RAM memories, ECP5's classic LUT mapping, iCE40's multipliers on SB_MAC16, so memory
inference, DSP mapping and LUT mapping are the board build's) and writes the mapped netlist
(``netlist.v``). Then it replaces every cell it ships a simulation model of
(``share/<family>/cells_sim.v``) by that model, flattens the design, folds the constants (each LUT's
truth table) and writes it again (``simulated.v``): Verilator reads that with our models of the
cells Yosys ships only blackboxes of (in sim/: ECP5's DP16KD and MULT18X18D, Gowin's block RAMs and
multipliers). Left out: the board's top (PLL, I/O buffers), and placement and routing (timing is
nextpnr's report's).
"""

import hashlib
import shutil
from pathlib import Path

from fpga.boards import Board
from model import paths

from .build import soc_script
from .synth import run_yosys

# Per family: the cell models Yosys ships (read by Yosys, which flattens them into the netlist) and
# ours of the cells it ships none of (read by the simulator).
MODELS = {
    "ecp5": {"share": "+/ecp5/cells_sim.v", "own": ("DP16KD.v", "MULT18X18D.v")},
    "ice40": {"share": "+/ice40/cells_sim.v", "own": ()},
    "gowin": {"share": "+/gowin/cells_sim.v", "own": ("gowin_bsram.v", "gowin_mult.v")},
}
# After synthesis: the mapped netlist, then every cell Yosys has a model of replaced by it,
# flattened, constants folded and names dropped (a smaller C++ model for Verilator: 6 minutes to
# compile a tiny model's SoC on 2 cores, against more than 25 with each cell a module). NO_INCLUDES:
# ECP5's cells_sim.v would include its flip-flop and I/O wrappers twice; the netlist uses none.
# setundef: undefined constants become 0 (iCE40's RAM model has a write port with an undefined
# address, which Verilator rejects; Verilator is two-state anyway), after memory_collect (else
# write_verilog trips an assertion on the zeroed memory ports).
FLATTEN = """write_verilog -noattr netlist.v
design -reset
read_verilog netlist.v
read_verilog -DNO_INCLUDES {share}
{own}
hierarchy -top {top}
proc
flatten
opt_expr
memory_collect
setundef -zero
opt_clean -purge
write_verilog -noattr simulated.v
"""
# Verilator on Yosys' netlist (not our code): carry chains are vectors whose bits feed each other,
# and the netlist's lint and style (unused nets, unconnected cell pins, names) are Yosys'.
VERILATOR_ARGS = ["-Wno-UNOPTFLAT", "-Wno-lint", "-Wno-style"]
# The C++ of a flattened netlist is tens of files of flat cell logic, simulated for a few thousand
# cycles: compiled unoptimized rather than at verilated.mk's -Os, a file takes 2.3 s instead of 19
# (a tiny model's ECP5 SoC, 2026-12-06), so the build is minutes, not half an hour.
MAKE_VARIABLES = {"OPT_FAST": "-O0"}
OWN_MODELS = paths.REPO / "sim"


class Netlist:
    """``board``'s gate-level netlist of a design, for ``sim.harness.build``."""

    def __init__(self, board: Board):
        self.board, self.family = board, board.family
        self._models = MODELS[board.family]

    def script(self, source: str, top: str) -> str:
        own = "\n".join(f"read_verilog -lib -overwrite {name}" for name in self._models["own"])
        return (soc_script(self.board, source=source, top=top)
                + FLATTEN.format(share=self._models["share"], own=own, top=top))

    def key(self) -> str:
        """What the netlist depends on besides the design: the board's synthesis script."""
        return self.script("DESIGN", "TOP")

    def sources(self) -> list[Path]:
        """The models of the cells the simulator reads beside the netlist."""
        return [OWN_MODELS / name for name in self._models["own"]]

    make_variables = MAKE_VARIABLES

    def build_args(self, simulator: str) -> list[str]:
        if simulator != "verilator":
            raise ValueError(f"a gate-level netlist simulates on Verilator, not {simulator}")
        return VERILATOR_ARGS

    def synthesize(self, source: Path, top: str, workdir: Path) -> Path:
        """The netlist to simulate of ``source`` (module ``top``), written to ``workdir`` (again only
        when the design or the script changed, so the simulator's build stays cached); the mapped
        netlist beside it is ``netlist.v``."""
        script = self.script(source.name, top)
        stamp = hashlib.sha256((script + source.read_text()).encode()).hexdigest()
        simulated, stamp_file = workdir / "simulated.v", workdir / "netlist.stamp"
        if not simulated.exists() or not stamp_file.exists() or stamp_file.read_text() != stamp:
            for name in self._models["own"]:       # Yosys (WebAssembly) sees only its folder
                shutil.copyfile(OWN_MODELS / name, workdir / name)
            run_yosys(script, workdir)
            stamp_file.write_text(stamp)
        return simulated
