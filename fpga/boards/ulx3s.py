"""Radiona ULX3S (Lattice ECP5, 25 MHz oscillator, FT231X USB UART, 8 LEDs). The primary board:
the 85F holds the ulx3s model's weights in block RAM (built into the bitstream), the 45F the small
model's. The 25F holds no engine: at the smallest vector sizes a tiny model's SoC takes 24,890
LUTs of its 24,288 and 48 of its 28 multipliers (docs/boards.md). Each SoC clock is the measured post-route fmax rounded down to one the
PLL makes (docs/boards.md)."""

from hw.engine import EngineSizes

from . import Board


# 8×32 with lanes 4/16/32: 9,309 cycles a token in the SoC simulation with the matmul's results two a
# cycle (2026-12-06); 10,169 with one a cycle (10,080 before the ScaleUnit's
# extra normalizer cycle and the registered scale products; 9,917 before the head
# quantizer and Dequantizer went to two lanes a cycle; 11,333 before the attention heads were
# pipelined three deep, the head quantizer got two banks and RoPE its early emission). At 8 vector
# lanes (9,207 cycles): 42,211 LUTs and 131 multipliers, 56.50 MHz asking 60, then no route after
# two timing fixes (router2's overuse grew past iteration 140; 2026-12-05, docs/boards.md).
# At 32 attention lanes (a whole head a word): 9,817 cycles a token in the SoC simulation and, by the
# cycle model, 12,569 over the whole context against 15,267; but 143 multipliers and 36,472 LUTs:
# with seed 5 router2's overuse grew from 1,494 (iteration 37) to 6,061 (47) before it was stopped;
# seed 3 routed at 44.6 MHz, the slowest path the values pass's aligned weight register fanned out to
# 32 multipliers (18 ns of it routing; 2026-12-06). With a copy of it per 16 lanes (seed 5): 58.63 MHz,
# the slowest path then the instruction's op into the Dequantizer's input; with EMBED and NORM decoded
# into registers and the results two a cycle, 56.59 (the route into the result FIFO's read enable);
# with the route decoded likewise, 54.91: an aligned copy at one side of the die, its multiplier
# at the other (8.6 ns of routing) and the product's register further (5.2 ns). With the aligned
# weight registered again beside every 4 multipliers (a cycle more in the values pass): 56.53 MHz
# with seed 1, the reset net then the slowest path (docs/benchmarks.md, *32 attention lanes*).
# 16×32 (2026-12-07, later): 6,810 cycles a token in the SoC simulation against 7,749 at 8×32 (the
# weight-read bound 1,872 against 3,744); 48,057 LUTs, 203 block RAMs, 133 multipliers, 60.75 MHz
# asking 59.375 with seed 5, the head quantizer's normalizing shift then the slowest path.
ENGINE_85F = EngineSizes(rows=16, simd=32, lanes=4, attention_lanes=16, head_lanes=32)
# The explorer's choice for the 45F (tritium explore --board ulx3s-45f; docs/performance.md):
# with the matmul's results two a cycle (hw.engine.result_drain) 24,530 LUTs, 44 block RAMs, 68
# multipliers, fmax 62.87 MHz; 5,368 cycles a token in the SoC simulation, 11,177 tok/s at 60 MHz
# (2026-12-06). One a cycle: 24,449 LUTs, 66.02 MHz, 5,984 cycles, 10,026 tok/s. Before it 2×32 with lanes 2/4/16: 18,555 LUTs,
# 47 block RAMs, 58 multipliers, 62.32 MHz, 7,030 cycles, 8,535 tok/s (22,477 LUTs and 42
# multipliers with the int8 products in the fabric, 34,720 LUTs and 22.4 MHz with the first blocks;
# 4×8 with lanes 2/4/4 before it)
ENGINE_SMALL = EngineSizes(rows=4, simd=32, lanes=4, attention_lanes=8, head_lanes=8)

# Both ULX3S boards talk at 3 Mbaud, the FT231X's top rate (300 baud to 3 Mbaud in its datasheet):
# 20 clock cycles a bit at 60 MHz. At 6 bytes a TOKEN frame that delivers up to 50,000 tokens a
# second (1 Mbaud: 16,667, below issue 19's target).
BOARDS = [
    # 57.143 MHz (25 × 16 / 7, the PLL's next step below 59.375 that keeps 3 Mbaud within 2%) since
    # 2026-12-08 at 16×32 with the matmul's results four a cycle through the output path
    # (output_lanes 4): 5,965 cycles a token against 6,820 at two, 9,580 tok/s against 8,706 at
    # 59.375 MHz; 5,721 cycles (9,988 tok/s) with the norm's D in 92 cycles: 57.72 MHz post-route
    # with seed 1 (50,807 LUTs, 150 multipliers, 1,565 s); seed 5 52.11 (the attention's aligned
    # weight into a value product's block across the die). The engine before that change routed at
    # 57.37 MHz asking 59.375 (seed 5, 50,304 LUTs, 204 block RAMs, 149 multipliers; its slowest
    # path the norm's bit length into its shift); at two output lanes 59.43 asking 59.375.
    # 60.68 MHz post-route asking 59.375 MHz (the PLL's step below 60) with nextpnr's static placer
    # and seed 5 (2026-12-07, 40,877 LUTs, 203 block RAMs, 133 multipliers, 1,344 s with another
    # build running): 7,747 cycles a token, 7,665 tok/s against 7,155 (8,735 at 62.5).
    # Since the heads went two a cycle through two AbsmaxQuantizers, the products of the same codes
    # chained and the heads written by their own route (2026-12-07: 7,747 cycles a token against
    # 8,735) no build has met 60 MHz: 51.3-60.5 MHz asking 62.5, then 44.7-59.8 asking 60 as each
    # build's slowest path was fixed (the attention's multipliers on MULT18X18D blocks with their own
    # registers, the norm's first-pass end and bit length, the LM head's stall; last, 59.78 MHz with
    # seed 5: a KV-cache read through its multiplexer into a key product's block; docs/benchmarks.md,
    # *The ULX3S-85F asking more than 60 MHz*). The PLL's steps below 60 that keep 3 Mbaud within 2%:
    # 59.375 and 57.143 MHz. Before: 63.75 MHz post-route asking 62.5 MHz with seed 1 and the norms
    # a word of two beats a cycle (norm_ratio 2; 38,931 LUTs, 203 block RAMs, 123 multipliers):
    # 8,735 cycles a token against 9,330. At four beats a word (147 multipliers) placement estimated
    # 46.19 MHz, not routed. With the Dequantizer at 4 units (dequantizer_units) and a faster
    # ScaleUnit MUL: 8,433 cycles, but 49.86-61.89 MHz with seeds 1, 3 and 5, not kept.
    # 64.88 MHz post-route asking 62.5 MHz with seed 1 and the LM head's dot copied beside the
    # logit's multipliers (2026-12-07, 33,984 LUTs, 896 s). Before that copy:
    # 62.77 MHz post-route asking 62.5 MHz (the PLL's next step above 60.71) with seed 1, the
    # matmul's results staged in two registered words before the output path (2026-12-07, 1,505 s
    # with the test suite running; before the stage 62.14, the heads' route through the result
    # unpacker's count into the result FIFO's read enable; 52.96 asking 65). Asking 60: 65.77 MHz
    # with seed 1 and the matmul's results two a cycle
    # (2026-12-06, 33,919 LUTs, 872 s with other jobs running; seed 5 routed at 57.42, its slowest
    # path the engine's busy into the HostLink's frame logic across the die; seed 3 was placed at
    # an estimated 54.77 and stopped). One a cycle: 67.54 MHz with seed 5 and the UART at 3 Mbaud (33,849 LUTs). At 1 Mbaud:
    # 65.93 MHz post-route asking 60 MHz with nextpnr's static placer and seed 5 (2026-12-05, 33,754
    # LUTs, 207 block RAMs with the norm's buffer, 111 multipliers, 475 s; seeds 1, 3 and 4: 58.91,
    # 59.89, 63.60). Before: 62.20 MHz with seed 3 (35,780 LUTs, 498 s); 60.02 MHz before the
    # command skid, the registered gate peak and the skid's clock enable; the engine before the
    # two-lane head quantizer and Dequantizer: 64.70 MHz with seed 3, 57.15 and 53.84 with seeds 1
    # and 2). With heap's placements router2 stalled on congestion on every engine since the shared
    # Dequantizer (docs/boards.md). The vector engine at 8 lanes: 1.13× fewer cycles than at 4
    # (tritium bench vector), the LUTs the chip has room for, and the fixed-cost target's lanes
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "models/ulx3s",
          ENGINE_85F, clock_mhz=57.143, baud=3_000_000, loader_board="ulx3s",
          reset_button="button_pwr", distributed_ram=("gated/buffer", "rms/buffer"), placer="static",
          placer_seed=1, vector_lanes=8, norm_ratio=2, output_lanes=4),
    # 60.65 MHz post-route asking 60 MHz with nextpnr's static placer and seed 5 (2026-12-08, 28,197
    # LUTs, 72 of 72 multipliers with the norm's own scale multiplier, 840 s; 4,302 cycles a token,
    # 13,948 tok/s; seed 3: 55.76 MHz, the sampler's threshold product split over two blocks far
    # apart). Before the norm's D in 92 cycles: 63.50 MHz with seed 3 (27,664 LUTs, 71 multipliers,
    # 767 s; 4,618 cycles, 12,992 tok/s), the LM head's int8 products from LUTs (fabric_multipliers),
    # without which the engine takes 79 multipliers. Before:
    # 64.87 MHz post-route asking 60 MHz with nextpnr's static placer and seed 3 (4×32, 4/8/8,
    # 2026-12-07, 24,571 LUTs, 439 s with other jobs running), the LM head's dot copied beside the
    # logit's multipliers; with the matmul's result stage and without that copy 57.62 (the dot's
    # 6.8 ns route to the multipliers the slowest path). 62.87 MHz with
    # results two a cycle (2026-12-06, 24,530 LUTs, 844 s with other jobs running); one a cycle
    # 66.02 MHz (24,449 LUTs, 467 s). At 2×32 2/4/16: 62.32 MHz with the UART at 3 Mbaud (18,555
    # LUTs); at 1 Mbaud 61.22 MHz with the same placer and seed (2026-12-05, 18,581 LUTs, 162 s;
    # 72.30 and 68.09 on the two engines before; 59.67 before the engine's scale
    # products were registered). Earlier: 70.26 with seed 3 (18,722 LUTs), 65.92 with seed 2;
    # heap's placement with seed 2 routed that netlist at 57.83 (its slowest path the norm's output
    # skid through the quantizer's stall into its state). Before: 63.1 MHz with heap and seed 2
    # (18,643 LUTs, 284 s; 62.3 before the weight columns and the tied table's one ROM, 64.7 with
    # the RmsQuantizer's own AbsmaxQuantizer buffer); with seed 1 an earlier engine routed at 57.3
    # asking 60 and 61.2 asking 50, placement deciding the last few MHz (the slowest paths are
    # registers through a MULT18X18D to registers, most of their delay routing)
    Board("ulx3s-45f", "amaranth_boards.ulx3s:ULX3S_45F_Platform", "ecp5", "models/small",
          ENGINE_SMALL, clock_mhz=60.0, baud=3_000_000, loader_board="ulx3s",
          reset_button="button_pwr", placer="static", placer_seed=5, fabric_multipliers=("table",)),
]
