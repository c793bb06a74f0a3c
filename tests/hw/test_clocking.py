# amaranth: UnusedElaboratable=no
"""PLL settings within each family's limits, and the clock-and-reset block."""

import pytest
from amaranth import ClockDomain, Module, Signal
from amaranth.back import rtlil

from hw.clocking import FAMILIES, ClockReset, pll_settings


@pytest.mark.parametrize("family, input_mhz, target_mhz", [
    ("ecp5", 25, 25), ("ecp5", 25, 40), ("ecp5", 25, 50), ("ecp5", 25, 31.25),
    ("ice40", 12, 24), ("ice40", 12, 30), ("gowin", 27, 27), ("gowin", 27, 40.5)])
def test_settings_within_limits(family, input_mhz, target_mhz):
    s = pll_settings(family, input_mhz, target_mhz)
    inputs, feedbacks, outputs, (pfd_lo, pfd_hi), (vco_lo, vco_hi) = FAMILIES[family]
    assert s.input_div in inputs and s.feedback_div in feedbacks and s.output_div in outputs
    assert pfd_lo <= input_mhz / s.input_div <= pfd_hi and vco_lo <= s.vco_mhz <= vco_hi
    assert s.output_mhz == pytest.approx(target_mhz, rel=0.01)


def test_unreachable_and_unknown():
    with pytest.raises(ValueError, match="cannot make 48 MHz from 25 MHz"):
        pll_settings("ecp5", 25, 48, tolerance=0.001)
    with pytest.raises(ValueError, match="no PLL model"):
        pll_settings("xilinx", 100, 50)


@pytest.mark.parametrize("family", ["ecp5", "ice40", "gowin"])
def test_clock_reset_elaborates(family):
    clk, reset = Signal(), Signal()
    input_mhz = {"ecp5": 25, "ice40": 12, "gowin": 27}[family]
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.clocking = ClockReset(clk, reset, pll_settings(family, input_mhz, 30))
    text = rtlil.convert(m, ports=[clk, reset])
    assert {"ecp5": "EHXPLLL", "ice40": "SB_PLL40_CORE", "gowin": "rPLL"}[family] in text
