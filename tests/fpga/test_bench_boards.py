"""`tritium bench boards`'s table: benching some boards keeps the other boards' rows, each with
the date it was measured and the engine sizes it was built with."""

import json

from fpga.bench.boards import keep_rows, render


def bench_row(board, cycles, measured, fits=True, fmax=44.2):
    report = {"resources": {"luts": [40_000, 83_640], "ffs": [20_000, 83_640], "ram": [199, 208],
                            "dsp": [77, 156]}, "fmax_mhz": fmax if fits else None, "fits": fits,
              "seconds": 1467}
    return {"board": board, "model": "models/ulx3s",
            "engine": {"rows": 8, "simd": 32, "lanes": 4, "attention_lanes": 16, "head_lanes": 32},
            "clock_mhz": 40.0, "baud": 1_000_000, "report": report, "cycles_per_token": cycles,
            "tokens": 32, "tok_s_clock": 40e6 / cycles, "tok_s_fmax": fmax * 1e6 / cycles if fits else None,
            "uart_tok_s": 16_667, "measured": measured}


def test_benching_one_board_keeps_the_others(tmp_path):
    store = tmp_path / "bench-boards.json"
    keep_rows(store, [bench_row("ulx3s-45f", 8_000, "2026-11-24"), bench_row("ulx3s-85f", 16_000, "2026-11-24")])
    shown = keep_rows(store, [bench_row("ulx3s-85f", 11_812, "2026-12-04")])
    assert [(r["board"], r["cycles_per_token"], r["measured"]) for r in shown] == [
        ("ulx3s-85f", 11_812, "2026-12-04"), ("ulx3s-45f", 8_000, "2026-11-24")]
    assert sorted(json.loads(store.read_text())) == ["ulx3s-45f", "ulx3s-85f"]


def test_each_row_names_its_date_and_engine():
    text = render([bench_row("ulx3s-85f", 11_812, "2026-12-04"),
                   bench_row("icebreaker", 21_163, "2026-11-24", fits=False)])
    row_85f = next(line for line in text.splitlines() if line.startswith("| ulx3s-85f"))
    assert "| 8×32, 4/16/32 |" in row_85f and row_85f.endswith("| 2026-12-04 |")
    assert "| 3,386 (3,742) |" in row_85f
    row_ice = next(line for line in text.splitlines() if line.startswith("| icebreaker"))
    assert "does not fit" in row_ice and row_ice.endswith("| 2026-11-24 |")


def test_a_build_below_its_clock_claims_no_rate_at_that_clock():
    text = render([bench_row("ulx3s-85f", 4_000, "2026-12-07", fmax=37.5)])
    row = next(line for line in text.splitlines() if line.startswith("| ulx3s-85f"))
    assert "| **37.5** (< clock) | 40.0 |" in row
    assert "— (timing not met: 9,375 at the fmax; 10,000 at 40.0 MHz if it were)" in row
    assert "- target ≥ 20,000 tok/s on ulx3s-85f: not met (9,375 tok/s at the fmax, 2.1× short)" in text
