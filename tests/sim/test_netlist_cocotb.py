"""Gate-level netlists (fpga/flow/netlist.py): what Yosys maps a tiny model's SoC to for an ECP5
board, simulated with the vendor cells' models behind the UART, gives the integer model's tokens,
greedy and sampled (sim/tb_soc.py's ``tokens``); and a block RAM in each width and the multipliers
give Python's words and products on ECP5 and Gowin (sim/tb_cells.py)."""

import os

import pytest

from fpga.boards import BOARDS
from fpga.flow.netlist import MODELS, Netlist
from sim.harness import available_simulators, run
from sim.tb_cells import CellProbe
from sim.virtual_board import soc_factory, soc_params, tiny_model

SEED = int(os.environ.get("TRITIUM_SEED", "5"))
CELL_SHAPES = [(4, 4096), (9, 2048), (18, 1024), (36, 512)]      # (width, depth): one DP16KD each
ROM_SHAPES = [(4, 4096), (18, 1024)]          # single-port: Gowin's SP and SPX9


@pytest.mark.slow
@pytest.mark.skipif("verilator" not in available_simulators(), reason="no Verilator")
def test_ecp5_netlist_generates_the_integer_models_tokens(tmp_path):
    params = soc_params(tiny_model(), dict(rows=2, simd=4, lanes=1), clock_hz=8e6)
    run(soc_factory, params, design="soc", bench="sim.tb_soc", testcase="tokens", simulator="verilator",
        seed=SEED, test_dir=tmp_path, netlist=Netlist(BOARDS["ulx3s-45f"]))


@pytest.mark.skipif("verilator" not in available_simulators(), reason="no Verilator")
@pytest.mark.parametrize("board", [None, "ulx3s-45f", "tang-primer-20k"],
                         ids=["rtl", "ecp5-netlist", "gowin-netlist"])
def test_block_ram_and_multipliers_as_mapped(board, tmp_path):
    """A block RAM in each width Yosys maps the boards' memories to (ECP5: DP16KD 4/9/18 bits, and 36
    as a pseudo-dual-port; Gowin: DPB at 4 bits, DPX9B at 9 and 18, SDPX9B at 36), two ROMs (Gowin:
    SP, SPX9) and a signed and an unsigned multiplier (MULT18X18D, MULT18X18): random words and
    products equal Python's, on the Verilog (the bench itself) and on each family's netlist (the
    cell models)."""
    run(CellProbe, dict(shapes=CELL_SHAPES, roms=ROM_SHAPES), design="cells", bench="sim.tb_cells",
        simulator="verilator", seed=SEED, test_dir=tmp_path,
        netlist=Netlist(BOARDS[board]) if board else None)


def test_every_family_has_cell_models_for_verilator():
    assert {board.family for board in BOARDS.values()} <= set(MODELS)
    with pytest.raises(ValueError, match="a gate-level netlist simulates on Verilator, not icarus"):
        Netlist(BOARDS["ulx3s-45f"]).build_args("icarus")
