"""1BitSquared iCEBreaker (Lattice iCE40 UP5K, 12 MHz oscillator, FT2232H USB UART, 2 LEDs): the
small model's weights in the UP5K's SPRAM, loaded from the SPI flash at boot (``tritium flash``
writes them at ``flash_offset``, after the bitstream)."""

from hw.engine import EngineSizes

from . import Board

BOARDS = [
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "models/small",
          EngineSizes(rows=4, simd=8, lanes=1, attention_lanes=1, head_lanes=1), k_max=4,
          # openFPGALoader knows the iCEBreaker as ice40_generic (its src/board.hpp)
          clock_mhz=12.0, baud=1_000_000, loader_board="ice40_generic",
          # does not fit yet: docs/boards.md has what the SoC takes and the chip holds
          flash_offset=0x100000),
]
