"""``tritium bench vector``: a shipped model's positions as vector-unit programs, counted by step."""

from fpga.bench.vector import VARIANTS, markdown, measure


def test_counts_a_token_by_step():
    result = measure("small", lanes_list=(1, 4), positions=2)
    steps = {s["step"]: s for s in result["steps"]}
    assert {"norm", "heads", "rope", "attend", "gated", "residual", "lm head", "sample"} <= set(steps)
    # a norm: three passes (its max |x| comes from the pass that wrote x); four a layer and the final one
    assert steps["norm"]["passes"] == 3 * (4 * 3 + 1)
    assert all(s["cycles"][1] >= s["passes"] for s in result["steps"])
    assert result["scalar_ops"] > 0
    # overlapping can only shorten the serial sum of passes and scalar operations
    for lanes in (1, 4):
        serial = sum(s["cycles"][lanes] for s in result["steps"]) + result["scalar_cycles"]
        assert 0 < result["overlapped"][lanes] <= serial
        # the core as built (its passes overlap the scalar operations after them that do not need them)
        assert result["core"][lanes] > 0
    # a whole token on the VectorEngine: attention, the LM head and RoPE's rows on their units take
    # fewer cycles than as vector-unit programs
    for lanes in (1, 4):
        on_units, on_vector_unit = (result["engine"][variant][lanes] for variant in reversed(VARIANTS))
        assert 0 < on_units < on_vector_unit
    assert result["today"] > 0
    text = markdown([result])
    assert "**small** (positions 0–1)" in text and "| norm | 39 |" in text
    assert "A whole token of **small**" in text
