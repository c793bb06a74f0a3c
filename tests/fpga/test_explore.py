"""The design-space explorer: the memory list against the elaborated design, the block-RAM cut
against Yosys, the cycle and resource models against the stored measurements
(fpga/perf/data/validation.json, written by ``tritium bench explore``), the sweep, its Pareto front and
refusals, and the command line."""

import json
import warnings

import pytest
from amaranth import Shape
from amaranth.hdl import Fragment
from amaranth.hdl._mem import MemoryInstance

from model import paths
from fpga.perf import explore
from fpga.bench.explore import (BUILDS, CYCLE_CONFIGS, CYCLE_TOLERANCE, DATA, LUT_TOLERANCE,
                                compare)
from fpga.boards import BOARDS
from fpga.perf.cycle_model import FETCH, mean_cycles, roofline, weight_bound
from fpga.perf.memory_map import blocks_for, map_memory, soc_memories
from fpga.perf.projection import BITNET_2B4T, bandwidth_for, project, traffic
from fpga.perf.resource_model import predict
from model.memory import PARTS
from hw.soc import Soc
from model.integer import tiny_model
from model.checkpoint import load_weights
from model.integer import IntegerModel


def design_memories(soc) -> dict:
    """name → (width, depth, ROM) of every memory in the elaborated ``soc``."""
    found = {}

    def walk(fragment, path):
        if isinstance(fragment, MemoryInstance):
            found[path.lstrip("/")] = (Shape.cast(fragment._data.shape).width, fragment._data.depth,
                                       not fragment._write_ports)
        for sub, name, *_ in fragment.subfragments:
            walk(sub, f"{path}/{name}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        walk(Fragment.get(soc, None), "")
    return found


@pytest.mark.parametrize("shape", ["small", "silu"])
def test_memory_list_is_the_designs(tmp_path, shape):
    if shape == "small":
        model = IntegerModel(load_weights(paths.MODELS / "small"))
        params = dict(rows=2, simd=8, lanes=1, attention_lanes=2, head_lanes=2)
    else:       # SiLU (its sigmoid table), untied, lanes that differ everywhere
        model = tiny_model(tmp_path, 4, hidden_act="silu", tie_word_embeddings=False,
                           hidden_size=32, intermediate_size=48, max_position_embeddings=16)
        params = dict(rows=3, simd=16, lanes=4, attention_lanes=8, head_lanes=16)
    soc = Soc(model, clock_hz=20e6, baud=2_500_000, engine=params)
    predicted = {m.name: (m.width, m.depth, m.rom) for m in soc_memories(model.config, params)}
    assert predicted == design_memories(soc)


# Block RAMs Yosys (synth_ecp5) made of one memory alone, measured here (width, depth, ROM).
YOSYS_DP16KD = {(32, 7680, True): 15, (128, 260, True): 4, (256, 960, True): 15, (16, 2080, True): 3, (16, 3072, False): 3,
                (54, 65, False): 2, (16, 1120, True): 2, (16, 256, True): 1, (28, 384, False): 1,
                (16, 127, False): 1, (32, 64, False): 1}


@pytest.mark.parametrize("shape,blocks", YOSYS_DP16KD.items())
def test_block_ram_cut_is_yosys(shape, blocks):
    width, depth, rom = shape
    assert blocks_for(width, depth, "ecp5", rom) == blocks


def test_shallow_memories_go_to_lut_ram():
    model = load_weights(paths.MODELS / "small").config
    params = dict(rows=2, simd=8, lanes=1, attention_lanes=2, head_lanes=2)
    lut_rams = sum(map_memory(m, "ecp5").lut_rams for m in soc_memories(model, params))
    # Yosys's TRELLIS_DPR16X4 count for this SoC (synth_ecp5 of the small-2x8 SoC): 83, and since
    # 2026-12-07 4 more for the staged results (the 85F build maps them so: 9 for its 36 bits), then
    # 10 more for the head quantizer's second AbsmaxQuantizer's buffer (97, synth_ecp5 2026-12-07)
    assert lut_rams == 97


@pytest.fixture(scope="module")
def validation():
    data = json.loads(DATA.read_text())
    return data, compare(data, paths.BUILD / "explore-validation")


def test_cycle_model_matches_verilator(validation):
    data, result = validation
    assert len({(c["model"], tuple(c["params"].values())) for c in result["cycles"]}) >= 5
    for c in result["cycles"]:
        assert abs(c["error"]) <= CYCLE_TOLERANCE, c
        assert c["measured"] >= c["bound"]         # nothing beats the weight-read bound
    assert len(data["cycles"]) == len(CYCLE_CONFIGS)


def test_resource_model_matches_nextpnr(validation):
    data, result = validation
    assert len(result["builds"]) >= 5 and len(data["builds"]) == len(BUILDS)
    for b in result["builds"]:
        assert abs(b["error"]["luts"]) <= LUT_TOLERANCE, b
        assert abs(b["predicted"]["ram"] - b["measured"]["ram"]) <= 2, b


def test_prefill_is_the_layers_and_decode_adds_the_head():
    config = load_weights(paths.MODELS / "ulx3s").config
    params = BOARDS["ulx3s-85f"].engine.as_dict()
    decode, prefill = (mean_cycles(config, params, [10], decode=d) for d in (True, False))
    assert decode["head"] > 0 and prefill["head"] == 0
    assert decode["cycles"] - prefill["cycles"] == decode["head"] + 2 * FETCH      # and two fetches
    later = mean_cycles(config, params, [200])
    assert later["attention"] > decode["attention"] and later["matmul"] == decode["matmul"]
    assert decode["cycles"] > weight_bound(config, params)


@pytest.fixture(scope="module")
def sweep_85f():
    board = BOARDS["ulx3s-85f"]
    config = load_weights(paths.REPO / board.model).config
    return board, config, explore.sweep(board, config, simd=16, lanes=4)


def test_pareto_front_is_fitting_and_undominated(sweep_85f):
    _, _, points = sweep_85f
    front = explore.pareto(points)
    assert front and all(p.fits for p in front)
    luts = [p.resources["luts"] for p in front]
    speeds = [p.tokens_per_second for p in front]
    assert luts == sorted(luts) and speeds == sorted(speeds)
    for point in (p for p in points if p.fits):       # every fitting point is dominated
        assert any(f.resources["luts"] <= point.resources["luts"]
                   and f.tokens_per_second >= point.tokens_per_second for f in front)
    assert explore.best(points).tokens_per_second == max(speeds)


def test_points_that_do_not_fit_are_refused_with_the_resource(sweep_85f):
    board, config, points = sweep_85f
    refused = [p for p in points if not p.fits]
    assert refused
    for point in refused:
        for name, used, available in point.over:
            assert used > available and name in ("luts", "ffs", "ram", "dsp")
            assert f"{name} {used:,} of {available:,}" in point.refusal()
    big = explore.evaluate(board, config, dict(rows=64, simd=64, lanes=16, attention_lanes=32,
                                               head_lanes=32))
    assert not big.fits and "luts" in big.refusal()


def test_board_configurations_fit_their_parts():
    for name in ("ulx3s-85f", "ulx3s-45f"):
        board = BOARDS[name]
        point = explore.board_point(board, load_weights(paths.REPO / board.model).config)
        assert point.fits, (name, point.refusal())
    icebreaker = BOARDS["icebreaker"]
    point = explore.board_point(icebreaker, load_weights(paths.REPO / icebreaker.model).config)
    assert not point.fits and "luts" in point.refusal()       # docs/boards.md: does not fit


def test_projection_states_2b4t_traffic():
    t = traffic(BITNET_2B4T, 0)
    assert t["ternary_weights"] == 30 * (2 * 2560 * 2560 + 2 * 2560 * 640 + 3 * 2560 * 6912)
    assert t["weights"] == t["ternary_weights"] / 4                    # 2-bit codes
    assert bandwidth_for(BITNET_2B4T, 10, 0) == pytest.approx(
        10 * (t["weights"] + t["lm_head"] + t["kv_cache"]) / 1e9)
    rows = project()
    assert all(r["bandwidth_tps"] > 0 and r["array"]["rows"] * r["array"]["simd"] >= r["lanes_needed"]
               for r in rows)


def test_explore_command_refuses_and_sweeps(tmp_path, capsys):
    from fpga.cli import main

    assert main(["explore", "--board", "ulx3s-45f", "--rows", "64", "--simd", "32", "--lanes", "2",
                 "--attention-lanes", "4", "--head-lanes", "4"]) == 1
    assert "does not fit: luts" in capsys.readouterr().out
    assert main(["explore", "--board", "ulx3s-45f", "--rows", "4", "--simd", "3", "--lanes", "1",
                 "--attention-lanes", "1", "--head-lanes", "1"]) == 2
    assert "simd 3 is not a size the engine takes" in capsys.readouterr().err
    assert main(["explore", "--board", "ulx3s-45f", "--rows", "8", "--simd", "8", "--lanes", "2",
                 "--plot", str(tmp_path / "pinned.png")]) == 0        # rows pinned too
    capsys.readouterr()
    plot = tmp_path / "explore.png"
    assert main(["explore", "--board", "ulx3s-45f", "--simd", "8", "--lanes", "2",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and "refused" in out and plot.stat().st_size > 10_000


def test_parts_match_the_boards():
    assert {p.family for p in PARTS.values()} == {"ecp5", "ice40", "gowin"}
    config = load_weights(paths.MODELS / "small").config
    small = predict(config, BOARDS["ulx3s-45f"].engine.as_dict(), "ecp5")
    assert small["luts"] < PARTS["LFE5U-45F"].luts and small["ram"] < PARTS["LFE5U-45F"].ram


def test_roofline_is_the_slowest_resource_and_below_the_engine():
    config = load_weights(paths.MODELS / "ulx3s").config         # 3 layers, 6 heads, 2 kv heads, d 32
    params = BOARDS["ulx3s-85f"].engine.as_dict()                 # 16×32, attention 16, LM head 32
    first, last = roofline(config, params, 0), roofline(config, params, 255)
    assert first["weights"] == last["weights"] == 958_464 / 512 == first["bound"]
    assert last["attention"] == 3 * 6 * 256 * 32 * 2 / 32 == last["bound"]   # scores and values
    assert last["kv"] == 3 * 2 * 256 * 32 * 2 / 32 and last["lm_head"] == 65 * 192 / 32
    for position in (0, 16, 128, 255):
        assert mean_cycles(config, params, [position])["cycles"] > roofline(config, params, position)["bound"]
