"""Clock and reset for a board: the oscillator through the family's PLL to the chosen frequency, and
a reset held until the PLL locks and while the reset button is pressed.

:func:`pll_settings` picks a PLL's dividers for an input and a target frequency within the family's
limits (datasheet figures below) and returns the frequency it achieves; :class:`ClockReset` makes
the ``sync`` domain from it. A target equal to the oscillator needs no PLL.
"""

import dataclasses

from amaranth import ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

# (input divider range, feedback range, output divider values, PFD MHz range, VCO MHz range)
# ECP5 EHXPLLL: CLKI_DIV, CLKFB_DIV 1..128, CLKOP_DIV 1..128; PFD 3.125-400, VCO 400-800 MHz
# (FPGA-TN-02200). iCE40 SB_PLL40: DIVR 0..15, DIVF 0..127, DIVQ 1..6 (a power of two); PFD 10-133,
# VCO 533-1066 MHz (iCE40 sysCLOCK guide). Gowin rPLL: IDIV 1..64, FBDIV 1..64, ODIV 2..128 even
# values; PFD 3-400, VCO 400-1200 MHz (GW1NR-9 / GW2A datasheets).
FAMILIES = {
    "ecp5": (range(1, 129), range(1, 129), range(1, 129), (3.125, 400), (400, 800)),
    "ice40": (range(1, 17), range(1, 129), [2 ** q for q in range(1, 7)], (10, 133), (533, 1066)),
    "gowin": (range(1, 65), range(1, 65), [2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128],
              (3, 400), (400, 1200)),
}


@dataclasses.dataclass(frozen=True)
class PllSettings:
    family: str
    input_mhz: float
    input_div: int
    feedback_div: int
    output_div: int

    # ECP5 and Gowin feed the output back (output = input · feedback / input_div, VCO = output ·
    # output_div); the iCE40 (SIMPLE feedback) feeds the VCO back (output = VCO / output_div).
    @property
    def vco_mhz(self) -> float:
        pfd = self.input_mhz / self.input_div
        return pfd * self.feedback_div * (1 if self.family == "ice40" else self.output_div)

    @property
    def output_mhz(self) -> float:
        return self.vco_mhz / self.output_div


def pll_settings(family: str, input_mhz: float, target_mhz: float, tolerance: float = 0.01) -> PllSettings:
    """The dividers whose output is closest to ``target_mhz`` (ties: the higher VCO); raises when
    none is within ``tolerance`` (relative)."""
    if family not in FAMILIES:
        raise ValueError(f"no PLL model for family {family!r}; known: {sorted(FAMILIES)}")
    inputs, feedbacks, outputs, (pfd_lo, pfd_hi), (vco_lo, vco_hi) = FAMILIES[family]
    best = None
    for input_div in inputs:
        pfd = input_mhz / input_div
        if not pfd_lo <= pfd <= pfd_hi:
            continue
        for feedback_div in feedbacks:
            for output_div in outputs:
                settings = PllSettings(family, input_mhz, input_div, feedback_div, output_div)
                if not vco_lo <= settings.vco_mhz <= vco_hi:
                    continue
                key = (abs(settings.output_mhz - target_mhz), -settings.vco_mhz)
                if best is None or key < best[0]:
                    best = key, settings
    if best is None or best[0][0] > tolerance * target_mhz:
        near = f" (nearest {best[1].output_mhz:.3f} MHz)" if best else ""
        raise ValueError(f"the {family} PLL cannot make {target_mhz} MHz from {input_mhz} MHz{near}")
    return best[1]


def _ice40_filter(pfd_mhz):
    """SB_PLL40's FILTER_RANGE for a PFD frequency (icepll's table)."""
    for value, below in enumerate((17, 26, 44, 66, 101), 1):
        if pfd_mhz < below:
            return value
    return 6


def pll_instance(settings: PllSettings, clk_in, clk_out, locked, *, device: str = ""):
    """The family's PLL primitive for ``settings`` (``clk_in`` from the oscillator's buffer)."""
    s = settings
    if s.family == "ecp5":
        return Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{s.input_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{s.output_mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=s.input_div, p_CLKFB_DIV=s.feedback_div, p_CLKOP_DIV=s.output_div,
            p_CLKOP_CPHASE=s.output_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=clk_in, i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=locked)
    if s.family == "ice40":
        return Instance(
            "SB_PLL40_CORE",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=s.input_div - 1, p_DIVF=s.feedback_div - 1,
            p_DIVQ=s.output_div.bit_length() - 1, p_FILTER_RANGE=_ice40_filter(s.input_mhz / s.input_div),
            i_REFERENCECLK=clk_in, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
    return Instance(
        "rPLL",
        p_FCLKIN=f"{s.input_mhz:g}", p_DEVICE=device, p_IDIV_SEL=s.input_div - 1,
        p_FBDIV_SEL=s.feedback_div - 1, p_ODIV_SEL=s.output_div, p_DYN_IDIV_SEL="false",
        p_DYN_FBDIV_SEL="false", p_DYN_ODIV_SEL="false", p_PSDA_SEL="0000", p_DUTYDA_SEL="1000",
        p_DYN_DA_EN="false", p_CLKOUT_FT_DIR=1, p_CLKOUTP_FT_DIR=1, p_CLKOUT_DLY_STEP=0,
        p_CLKOUTP_DLY_STEP=0, p_CLKFB_SEL="internal", p_CLKOUT_BYPASS="false",
        p_CLKOUTP_BYPASS="false", p_CLKOUTD_BYPASS="false", p_DYN_SDIV_SEL=2, p_CLKOUTD_SRC="CLKOUT",
        p_CLKOUTD3_SRC="CLKOUT",
        i_CLKIN=clk_in, i_CLKFB=0, i_RESET=0, i_RESET_P=0, i_FBDSEL=Const(0, 6), i_IDSEL=Const(0, 6),
        i_ODSEL=Const(0, 6), i_PSDA=Const(0, 4), i_DUTYDA=Const(0, 4), i_FDLY=Const(0, 4),
        o_CLKOUT=clk_out, o_LOCK=locked)


class ClockReset(Elaboratable):
    """Drives the ``sync`` domain (which its parent defines) at ``settings``' frequency (``None``:
    the oscillator itself), reset until the PLL locks and while ``reset`` is high (synchronized)."""

    def __init__(self, clk_in, reset, settings: PllSettings | None, *, device: str = ""):
        self.clk_in, self.reset, self.settings, self.device = clk_in, reset, settings, device
        self.clk = Signal()     # the sync clock, for the platform's clock constraint

    def elaborate(self, platform):
        m = Module()
        locked = Signal()
        if self.settings is None:
            m.d.comb += [self.clk.eq(self.clk_in), locked.eq(1)]
        else:
            m.submodules.pll = pll_instance(self.settings, self.clk_in, self.clk, locked,
                                            device=self.device)
        m.d.comb += ClockSignal("sync").eq(self.clk)
        m.submodules.reset_sync = ResetSynchronizer(~locked | self.reset, domain="sync")
        return m
