"""The SoC: the engine behind a UART that speaks the byte protocol (:mod:`hw.protocol`), in one
clock domain. A board top (``fpga.boards``) adds the PLL, the reset and the pins; the simulated
"virtual board" (``tritium chat --sim``) is this component alone.

::

    rx ─ UartRx ─ FIFO ─┐                  ┌─ command ─► Engine ─ o (tokens) ─┐
                        └─► HostLink ◄─────┴─ status ◄──────────────────────────┘
    tx ◄─ UartTx ◄──────────┘

Commands reach the engine through a skid buffer, so no path runs from the HostLink's registers
through its request logic into the engine's sequencer in one cycle (the ULX3S-85F's slowest path
at 60 MHz); the HostLink sees the engine busy while a command waits there.

``leds``: 0 a heartbeat (1 Hz), 1 the engine busy (also while the weights load from flash),
2 generating, 3 a protocol error answered since the last RESET or an engine error, 4 the context full.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out, connect

from model.integer import IntegerModel

from .engine import Engine
from .flash_loader import SpiSignature
from .host_link import HostLink
from .skid_buffer import SkidBuffer
from .uart import FRAME_BITS, UartRx, UartTx, divisor_for

LEDS = 5
RX_FIFO_DEPTH = 16          # bytes that may arrive while a request waits (the host sends one at a time)
TIMEOUT_BYTES = 16          # a frame whose bytes stop for this many byte times is dropped


class Soc(wiring.Component):
    """The engine behind the UART byte protocol in one clock domain, with LEDs (heartbeat,
    busy, generating, fault, full); what a board top wraps.

    Parameters
    ----------
    model : IntegerModel
        The engine's model.
    clock_hz : float
        The clock frequency (for the UART divisor and the heartbeat).
    baud : int
        The UART's rate; ``clock_hz / baud`` must be within 2% of an integer of at least 4.
    engine : dict
        :class:`~hw.engine.Engine`'s keyword arguments (rows, simd, lanes, ...); with
        ``vector=True``, :class:`~hw.vector_generator.VectorGenerator`'s instead (the engine on the
        shared vector unit, issue 18: its sizes and ``k_max``).
    """

    def __init__(self, model: IntegerModel, *, clock_hz: float, baud: int, engine: dict | None = None):
        self._divisor = divisor_for(clock_hz, baud)
        self._clock_hz, self._baud = clock_hz, baud
        engine = dict(engine or {})
        if engine.pop("vector", False):
            from .vector_generator import PARAMETERS, VectorGenerator
            unknown = set(engine) - set(PARAMETERS)
            if unknown:
                raise ValueError(f"the vector engine takes its sizes and k_max, not "
                                 f"{', '.join(sorted(unknown))} (its weights are in ROM)")
            self._engine = VectorGenerator(model, **engine)
        else:
            self._engine = Engine(model, **engine)
        timeout = TIMEOUT_BYTES * FRAME_BITS * self._divisor
        self._link = HostLink(model.config, k_max=self._engine.k_max, timeout=timeout)
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(LEDS)}
        if "flash" in self._engine.signature.members:
            members["flash"] = Out(SpiSignature)
        super().__init__(members)

    engine = property(lambda self: self._engine)
    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.submodules.link = link = self._link
        m.submodules.uart_rx = uart_rx = UartRx(self._divisor)
        m.submodules.uart_tx = uart_tx = UartTx(self._divisor)
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=RX_FIFO_DEPTH)
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        # a byte is lost when the FIFO is full: the receiver's overrun then pulses
        connect(m, uart_rx.o, rx_fifo.w_stream)
        connect(m, rx_fifo.r_stream, link.rx)
        m.d.comb += link.rx_lost.eq(uart_rx.overrun | uart_rx.framing)
        connect(m, link.tx, uart_tx.i)
        m.submodules.command_skid = command_skid = SkidBuffer(engine.command.payload.shape())
        connect(m, link.command, command_skid.i)
        connect(m, command_skid.o, engine.command)
        connect(m, engine.o, link.tokens_in)
        # the engine's status, busy also while a command waits in the skid buffer
        for name, member in engine.status.signature.members.items():
            source, sink = ((engine.status, link.status) if member.flow == Out
                            else (link.status, engine.status))
            m.d.comb += getattr(sink, name).eq(getattr(source, name))
        # (the engine's busy through a register: its sequencer's state to the HostLink was the
        # ULX3S-85F's slowest path; the command taken the cycle before covers the register's lag)
        engine_busy, command_taken = Signal(), Signal()
        m.d.sync += [engine_busy.eq(engine.status.busy),
                     command_taken.eq(engine.command.valid & engine.command.ready)]
        m.d.comb += link.status.busy.eq(engine_busy | command_taken | command_skid.o.valid)
        if "flash" in engine.signature.members:
            connect(m, wiring.flipped(self.flash), engine.flash)

        half_second = max(1, int(self._clock_hz // 2))
        heartbeat, blink = Signal(range(half_second)), Signal()
        with m.If(heartbeat == 0):
            m.d.sync += [heartbeat.eq(half_second - 1), blink.eq(~blink)]
        with m.Else():
            m.d.sync += heartbeat.eq(heartbeat - 1)
        m.d.comb += self.leds.eq(Cat(blink, engine_busy, link.generating,
                                     link.fault | engine.status.error, engine.status.full))
        return m
