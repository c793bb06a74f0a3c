"""The SoC in Verilator as a virtual board: ``soc_factory`` for the harness, :class:`VirtualBoard`,
which runs ``sim/tb_soc.py``'s ``bridge`` test in the background serving a pseudo-terminal, and
a pseudo-terminal that ``tritium chat --sim`` opens like a board's serial port
(``fpga.host.virtual.open_board``), so the host talks the byte protocol over the SoC's simulated
UART pins exactly as it would to a board.

The virtual board's UART runs at ``clock_hz / SIM_DIVISOR`` baud (a fast line: the simulator's time
goes into the engine, not into bits); tokens per second are stated from cycles (STATUS), not from
the simulator's wall clock.
"""

import json
import tempfile
import threading
import time
from pathlib import Path

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

SIM_DIVISOR = 8
DESIGN = "soc"


def soc_factory(model: str, engine: dict, clock_hz: float, baud: int):
    """The Soc of ``model`` (a checkpoint directory) with ``engine``'s parameters; one that loads
    its weights from flash gets a flash model holding them (:class:`SocWithFlash`)."""
    from hw.soc import Soc
    from model.checkpoint import load_weights
    from model.integer import IntegerModel

    soc = Soc(IntegerModel(load_weights(Path(model))), clock_hz=clock_hz, baud=baud, engine=engine)
    return soc if engine.get("flash_offset") is None else SocWithFlash(soc, engine["flash_offset"])


class SocWithFlash(wiring.Component):
    """A Soc whose engine loads its weights from SPI flash, with a SpiFlashModel holding them at
    ``offset``: the Soc's ports but ``flash``."""

    def __init__(self, soc, offset: int):
        self._soc, self._offset = soc, offset
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "leds": Out(len(soc.leds))})

    def elaborate(self, platform):
        from sim.spi_flash import SpiFlashModel

        m = Module()
        m.submodules.soc = soc = self._soc
        m.submodules.flash = flash = SpiFlashModel(bytes(self._offset) + soc.engine.flash_image())
        wiring.connect(m, soc.flash, flash.spi)
        m.d.comb += [soc.rx.eq(self.rx), self.tx.eq(soc.tx), self.leds.eq(soc.leds)]
        return m


def extra_sources(engine: dict) -> list:
    """Verilog models of the primitives an engine of these parameters instantiates (the iCE40
    SPRAM, ECP5's multiplier blocks)."""
    return ([Path(__file__).parent / "SB_SPRAM256KA.v"] if engine.get("spram") else []) + (
        [Path(__file__).parent / f"{engine['multiplier']}.v"] if engine.get("multiplier") else [])


def tiny_model() -> Path:
    """A random model small enough to simulate the SoC quickly (its protocol tests, its netlist,
    fuzzing), written once under build/ (a fixed path keeps the simulator builds cached)."""
    from model.integer import tiny_model as write_tiny_model
    from sim.harness import BUILD_ROOT

    path = BUILD_ROOT / "models" / "soc-tiny"
    if not (path / "model" / "config.json").exists():
        write_tiny_model(path, 2, max_position_embeddings=16)
    return path / "model"


def soc_params(model, engine: dict, clock_hz: float = 25e6) -> dict:
    return {"model": str(model), "engine": dict(engine), "clock_hz": clock_hz,
            "baud": int(clock_hz // SIM_DIVISOR)}


def tiny_soc_params() -> dict:
    """The SoC of :func:`tiny_model` that the protocol tests and ``tritium bench fuzz`` drive (one
    set of parameters: one cached simulator build)."""
    return soc_params(tiny_model(), dict(rows=2, simd=4, lanes=2), clock_hz=8e6)


class BoardStartError(RuntimeError):
    """The simulation behind the virtual board did not start serving its pseudo-terminal."""


class VirtualBoard:
    """A running ``bridge`` simulation; :meth:`close` ends it."""

    def __init__(self, params: dict, *, simulator: str = "verilator", status=None, timeout: float = 900,
                 netlist=None):
        from sim.harness import build

        self.params, self._dir = params, Path(tempfile.mkdtemp(prefix="tritium-board-"))
        self.pty_file, self.stop_file = self._dir / "pty", self._dir / "stop"
        runner, build_dir = build(soc_factory, params, design=DESIGN, simulator=simulator,
                                  log_file=self._dir / "build.log",
                                  extra_sources=[] if netlist else extra_sources(params["engine"]),
                                  status=status, label="the SoC", netlist=netlist)
        if status:
            status(f"starting the virtual board (simulator output: {self._dir / 'sim.log'})")
        env = {"TB_PARAMS": json.dumps(params), "TB_PTY": str(self.pty_file),
               "TB_STOP": str(self.stop_file), "COCOTB_LOG_LEVEL": "WARNING",
               "GPI_LOG_LEVEL": "WARNING"}
        self.error = None

        def serve():
            try:
                runner.test(test_module="sim.tb_soc", testcase="bridge", hdl_toplevel=DESIGN,
                            build_dir=build_dir, test_dir=self._dir, extra_env=env,
                            log_file=self._dir / "sim.log")
            except Exception as exc:       # noqa: BLE001 - reported by the caller
                self.error = exc
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.pty_file.exists():
            if self.error or not self._thread.is_alive() or time.monotonic() > deadline:
                raise BoardStartError(f"the virtual board did not start ({self.error}); see {self._dir}")
            time.sleep(0.2)
        self.path = self.pty_file.read_text()

    def close(self):
        self.stop_file.touch()
        self._thread.join(timeout=60)
