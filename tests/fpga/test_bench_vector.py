"""``tritium bench vector``: a shipped model's positions as vector-unit programs, counted by step."""

from fpga.bench.vector import markdown, measure


def test_counts_a_token_by_step():
    result = measure("small", lanes_list=(1, 4), positions=2)
    steps = {s["step"]: s for s in result["steps"]}
    assert {"norm", "heads", "rope", "attend", "gated", "residual", "lm head", "sample"} <= set(steps)
    # one norm: four passes, and the final norm's; every layer has four
    assert steps["norm"]["passes"] == 4 * (4 * 3 + 1)
    assert all(s["cycles"][1] >= s["passes"] for s in result["steps"])
    assert result["scalar_ops"] > 0
    # overlapping can only shorten the serial sum of passes and scalar operations
    for lanes in (1, 4):
        serial = sum(s["cycles"][lanes] for s in result["steps"]) + result["scalar_cycles"]
        assert 0 < result["overlapped"][lanes] <= serial
        # the core as built (its passes overlap the scalar operations after them that do not need them)
        assert result["core"][lanes] > 0
    text = markdown([result])
    assert "**small** (positions 0–1)" in text and "| norm | 52 |" in text
