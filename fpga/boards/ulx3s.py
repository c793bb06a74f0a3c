"""Radiona ULX3S (Lattice ECP5, 25 MHz oscillator, FT231X USB UART, 8 LEDs). The primary board:
the 85F holds the ulx3s model's weights in block RAM (built into the bitstream), the 45F the small
model's. The 25F holds no engine: at the smallest vector sizes a tiny model's SoC takes 24,890
LUTs of its 24,288 and 48 of its 28 multipliers (docs/boards.md). Each SoC clock is the measured post-route fmax rounded down to one the
PLL makes (docs/boards.md)."""

from hw.engine import SHALLOW_BUFFERS, EngineSizes

from . import Board


# 8×32 with lanes 4/16/32: 11,333 cycles a token in the SoC simulation (16,554 at 8×16 4/8/8)
ENGINE_85F = EngineSizes(rows=8, simd=32, lanes=4, attention_lanes=16, head_lanes=32)
# The explorer's choice for the 45F (tritium explore --board ulx3s-45f; docs/performance.md):
# 22,477 LUTs, 48 block RAMs, 42 multipliers, fmax 61.3 MHz (2026-12-04; 34,720 LUTs and 22.4 MHz
# with the first blocks; 4×8 with lanes 2/4/4 before it)
ENGINE_SMALL = EngineSizes(rows=2, simd=32, lanes=2, attention_lanes=4, head_lanes=16)

BOARDS = [
    # 51.6 MHz post-route at 46.875 MHz (2026-12-04; the output path's route into the head packer's
    # last flag, the head quantizer's input and RoPE's stall; asking 50 MHz, router2 diverged)
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "models/ulx3s",
          ENGINE_85F, clock_mhz=46.875, baud=1_000_000, loader_board="ulx3s",
          reset_button="button_pwr", distributed_ram=SHALLOW_BUFFERS),
    # 61.3 MHz post-route at 50 MHz (2026-12-04; its critical path the engine's scale product request
    # through the SharedScaleUnit's arbiter into its ScaleUnit). Asking 60 MHz it routed at 64.2, but
    # the smoke test's tiny SoC at 60 MHz routed at 56.5: the board stays at 50 MHz.
    Board("ulx3s-45f", "amaranth_boards.ulx3s:ULX3S_45F_Platform", "ecp5", "models/small",
          ENGINE_SMALL, clock_mhz=50.0, baud=1_000_000, loader_board="ulx3s",
          reset_button="button_pwr"),
]
