"""Sipeed Tang Primer 20K (Gowin GW2A-18 on the dock: 27 MHz oscillator, BL702 USB UART, 6 LEDs;
Apicula toolchain): the small model's weights in block RAM."""

from hw.engine import EngineSizes

from . import Board

BOARDS = [
    Board("tang-primer-20k", "amaranth_boards.tang_primer_20k:TangPrimer20kDockPlatform", "gowin",
          "models/small", EngineSizes(rows=4, simd=8, lanes=1, attention_lanes=1, head_lanes=1),
          clock_mhz=27.0, baud=1_000_000, loader_board="tangprimer20k",
          note="not placed: the small model's SoC at one vector lane takes 17,058 of the GW2A-18's "
               "20,736 LUT sites (13,654 LUT4s, 3,404 ALUs) and 41 of 46 block RAMs, and "
               "nextpnr-himbaechel's placers stop progressing on it (HeAP's legalisation, seeds 1-3; "
               "SA's initial placement); a tiny model's SoC (15,989 LUT sites) places, routes at "
               "128.9 MHz and packs (2026-12-05)"),
]
