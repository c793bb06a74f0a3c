"""Boards: each module pairs an amaranth-boards platform with an engine configuration and a shipped
model (``BOARDS`` by name), and :class:`BoardTop` is the design a board runs: the oscillator
through the PLL (:mod:`hw.clocking`), reset from a button and the PLL lock, the SoC
(:class:`hw.soc.Soc`) on the board's USB UART, its LEDs, and (iCE40) the SPI flash with the
weights.
"""

import dataclasses
import importlib
from pathlib import Path

from amaranth import ClockDomain, Const, Elaboratable, Module
from amaranth.build import ResourceError
from amaranth.lib import io

from hw.clocking import ClockReset, pll_settings
from hw.engine import EngineSizes
from hw.soc import LEDS, Soc
from model import paths
from model.checkpoint import load_weights
from model.integer import IntegerModel
from model.memory import PARTS, Part

# Per family, the multiplier primitive the engine's attention products are built on, with its own
# operand and product registers (hw/multiplier.py); a family not here gets inferred multiplies.
MULTIPLIERS = {"ecp5": "MULT18X18D"}


@dataclasses.dataclass(frozen=True)
class Board:
    name: str                   # on the command line: tritium build --board NAME
    platform: str               # "amaranth_boards.module:Class"
    family: str                 # "ecp5", "ice40" or "gowin" (PLL and report parsing)
    model: str                  # the shipped model it runs (a directory under the repository)
    engine: EngineSizes         # how wide its engine is built
    clock_mhz: float            # the SoC clock (the PLL's output; the oscillator's: no PLL)
    baud: int                   # the UART rate
    loader_board: str           # openFPGALoader's -b name
    reset_button: str | None = None     # a platform resource that resets the SoC while pressed
    flash_offset: int | None = None     # weights in SPI flash at this byte offset (else built in)
    k_max: int | None = None   # the sampler's largest top-k (None: the Engine's default)
    # engine memories (paths inside the Engine, e.g. "rms/buffer"; hw.engine.SHALLOW_BUFFERS) put
    # in LUT RAM rather than block RAM: shallow, wide buffers whose block RAMs the weights need
    distributed_ram: tuple = ()
    # engine blocks (e.g. "table", "attention/key_product0") whose small multiplies (products of at
    # most fpga.flow.build.FABRIC_PRODUCT_BITS bits) are built from LUTs (Yosys' booth), not
    # multiplier blocks: a part with LUTs to spare and too few multipliers
    fabric_multipliers: tuple = ()
    # nextpnr's placement seed: placement (and so whether router2 converges) changes with it
    placer_seed: int = 1
    # nextpnr's placer: "heap" (its default) or "static" (electrostatic; the ULX3S-85F's SoC routes
    # with it where heap's placements left router2 stalled on congestion)
    placer: str = "heap"
    # the vector engine's lanes (issue 18; None: the engine's ``lanes``)
    vector_lanes: int | None = None
    # the engine's norm_ratio: vector beats a word of the RmsQuantizer (its passes and codes run
    # lanes · norm_ratio wide, at three multipliers an element)
    norm_ratio: int = 1
    # the engine's output_lanes: matmul results a cycle through its output path (None: the engine's
    # default, 2)
    output_lanes: int | None = None
    # the engine's dequantizer_units: elements a cycle of its Dequantizer (None: the engine's default)
    dequantizer_units: int | None = None
    # HeAP's spreading target (nextpnr's --placer-heap-beta; None: its default, 0.9): the share of a
    # region's sites its cells may fill before they are spread further. Lower leaves the strict
    # legalisation less to do on a nearly full part (the Tang Primer 20K's HeAP stalled in it at 0.9)
    heap_beta: float | None = None

    def __post_init__(self):
        placers = ("heap", "sa") if self.family == "gowin" else ("heap", "sa", "static")
        if self.placer not in placers:
            raise ValueError(f"{self.name}: nextpnr-{self.family} has no placer {self.placer!r}; "
                             f"one of {', '.join(placers)}")
        if self.heap_beta is not None and (self.placer != "heap" or not 0 < self.heap_beta < 1):
            raise ValueError(f"{self.name}: heap_beta {self.heap_beta} needs the heap placer and a "
                             f"value between 0 and 1 (nextpnr's default is 0.9)")

    def platform_class(self):
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)

    @property
    def part(self) -> Part:
        """The FPGA on the board, from the one table of parts (``model.memory.PARTS``), by the name
        its amaranth-boards platform gives it (a Gowin platform's ``family`` names the part)."""
        platform = self.platform_class()
        return PARTS[platform.family if self.family == "gowin" else platform.device]

    def load_model(self, directory=None) -> IntegerModel:
        return IntegerModel(load_weights(Path(directory) if directory else paths.REPO / self.model))

    def engine_parameters(self) -> dict:
        """hw.engine.Engine's keyword arguments for this board."""
        params = self.engine.as_dict()
        if self.k_max is not None:
            params["k_max"] = self.k_max
        if self.norm_ratio != 1:
            params["norm_ratio"] = self.norm_ratio
        if self.output_lanes is not None:
            params["output_lanes"] = self.output_lanes
        if self.dequantizer_units is not None:
            params["dequantizer_units"] = self.dequantizer_units
        if self.flash_offset is not None:
            params.update(flash_offset=self.flash_offset, spram=self.family == "ice40")
        if self.family in MULTIPLIERS:
            params["multiplier"] = MULTIPLIERS[self.family]
        return params

    def vector_engine_parameters(self) -> dict:
        """hw.soc.Soc's ``engine`` for this board's sizes on the vector engine (issue 18), whose
        weights are in ROM."""
        from hw.vector_generator import PARAMETERS

        params = self.engine_parameters()
        if self.vector_lanes is not None:
            params["lanes"] = self.vector_lanes
        return {**{name: params[name] for name in PARAMETERS if name in params}, "vector": True}


class BoardTop(Elaboratable):
    """The whole design for ``board`` running ``model`` (``engine`` overrides the board's engine
    parameters, e.g. for a smoke build with a tiny model)."""

    def __init__(self, board: Board, model: IntegerModel, engine: dict | None = None):
        self.board, self.model = board, model
        params = board.engine_parameters()
        params.update(engine or {})
        self.engine_parameters = params
        self.soc = Soc(model, clock_hz=board.clock_mhz * 1e6, baud=board.baud, engine=params)

    def elaborate(self, platform):
        m = Module()
        board = self.board

        def buffer(name, direction, resource):
            m.submodules[name] = io_buffer = io.Buffer(direction, resource)
            return io_buffer

        clk = buffer("clk_buffer", "i", platform.request(platform.default_clk, 0, dir="-")).i
        input_mhz = platform.default_clk_frequency / 1e6
        settings = (None if abs(board.clock_mhz - input_mhz) < 1e-6
                    else pll_settings(board.family, input_mhz, board.clock_mhz))
        reset = (buffer("reset_buffer", "i", platform.request(board.reset_button, 0, dir="-")).i
                 if board.reset_button else Const(0))
        m.domains.sync = ClockDomain("sync")
        m.submodules.clocking = clocking = ClockReset(clk, reset, settings,
                                                      device=getattr(platform, "family", ""))
        if settings is not None:        # the oscillator's pin has its own constraint
            platform.add_clock_constraint(clocking.clk, board.clock_mhz * 1e6)
        m.submodules.soc = soc = self.soc
        uart = platform.request("uart", 0, dir="-")
        m.d.comb += [soc.rx.eq(buffer("rx_buffer", "i", uart.rx).i),
                     buffer("tx_buffer", "o", uart.tx).o.eq(soc.tx)]
        for index in range(LEDS):
            try:
                led = platform.request("led", index, dir="-")
            except ResourceError:
                break
            m.d.comb += buffer(f"led_buffer_{index}", "o", led).o.eq(soc.leds[index])
        if board.flash_offset is not None:
            spi = platform.request("spi_flash_1x", 0, dir="-")
            m.d.comb += [buffer("cs_buffer", "o", spi.cs).o.eq(~soc.flash.cs_n),
                         buffer("sck_buffer", "o", spi.clk).o.eq(soc.flash.sck),
                         buffer("copi_buffer", "o", spi.copi).o.eq(soc.flash.mosi),
                         soc.flash.miso.eq(buffer("cipo_buffer", "i", spi.cipo).i)]
        return m


def _collect():
    boards = {}
    for module in ("ulx3s", "icebreaker", "tang_nano_9k", "tang_primer_20k"):
        for board in importlib.import_module(f"{__name__}.{module}").BOARDS:
            boards[board.name] = board
    return boards


BOARDS = _collect()
