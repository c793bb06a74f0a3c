"""Sipeed Tang Primer 20K (Gowin GW2A-18 on the dock: 27 MHz oscillator, BL702 USB UART, 6 LEDs;
Apicula toolchain): the small model's weights in block RAM."""

from hw.engine import EngineSizes

from . import Board

BOARDS = [
    Board("tang-primer-20k", "amaranth_boards.tang_primer_20k:TangPrimer20kDockPlatform", "gowin",
          "models/small", EngineSizes(rows=4, simd=8, lanes=2, attention_lanes=4, head_lanes=4),
          clock_mhz=27.0, baud=1_000_000, loader_board="tangprimer20k",
          note="does not fit: Yosys maps the small model's SoC to 20,792 LUTs and 7,122 ALUs (about "
               "27,900 LUT4s) of the GW2A-18's 20,736; yowasp-nextpnr-gowin (apycula 0.15) has no "
               "GW2A-18C chip database, so it is not placed here"),
]
