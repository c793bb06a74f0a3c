"""Sipeed Tang Primer 20K (Gowin GW2A-18 on the dock: 27 MHz oscillator, BL702 USB UART, 6 LEDs;
Apicula toolchain): the small model's weights in block RAM."""

from hw.engine import EngineSizes

from . import Board

BOARDS = [
    # Placed, routed and packed on 2026-12-07 with HeAP's spreading target at 0.75 (seed 1, 27 MHz):
    # 14,947 LUT4 and 3,410 ALU (18,357 of 20,736 LUT sites), 41 of 46 block RAMs, 24 of 48
    # multipliers; post-route fmax 125.3 MHz; HeAP 1,001 s, its annealing 148 s, router1 407 s.
    # At nextpnr's default (0.9) HeAP's strict legalisation stopped progressing (seeds 1-3).
    Board("tang-primer-20k", "amaranth_boards.tang_primer_20k:TangPrimer20kDockPlatform", "gowin",
          "models/small", EngineSizes(rows=4, simd=8, lanes=1, attention_lanes=1, head_lanes=1),
          clock_mhz=27.0, baud=1_000_000, loader_board="tangprimer20k", heap_beta=0.75),
]
