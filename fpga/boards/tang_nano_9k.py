"""Sipeed Tang Nano 9K (Gowin GW1NR-9, 27 MHz oscillator, BL702 USB UART, 6 LEDs; Apicula
toolchain): the small model's weights in block RAM."""

from hw.engine import EngineSizes

from . import Board

BOARDS = [
    Board("tang-nano-9k", "amaranth_boards.tang_nano_9k:TangNano9kPlatform", "gowin", "models/small",
          EngineSizes(rows=4, simd=8, lanes=1, attention_lanes=1, head_lanes=1), k_max=4,
          # does not fit yet: docs/boards.md has what the SoC takes and the chip holds
          clock_mhz=27.0, baud=1_000_000, loader_board="tangnano9k"),
]
