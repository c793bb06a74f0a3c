"""8N1 UART: a receiver and a transmitter, ``divisor`` clock cycles a bit.

:class:`UartRx` samples ``rx`` (through a two-flip-flop synchronizer) in the middle of each bit:
a start bit that is still low half a bit after its falling edge, eight data bits LSB first, a stop
bit. A byte leaves on ``o`` (held until taken); a byte that completes while the previous one is
still waiting is dropped and ``overrun`` pulses; a low stop bit drops the byte, pulses ``framing``
and the receiver waits for the line to go high again (a break).

:class:`UartTx` sends each byte taken from ``i`` as start bit, eight data bits LSB first, stop bit:
``10 · divisor`` cycles a byte, the next byte taken in the stop bit's last cycle.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

MIN_DIVISOR = 4   # the receiver samples half a bit after the start edge: a bit needs a few cycles
FRAME_BITS = 10   # start, 8 data, stop


def divisor_for(clock_hz: float, baud: int, tolerance: float = 0.02) -> int:
    """Clock cycles a bit for ``baud`` at ``clock_hz``; raises if the rate would be off by more than
    ``tolerance`` (a receiver at the other end drifts half a bit over a 10-bit frame at 5%)."""
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{baud} baud needs at least {MIN_DIVISOR} cycles a bit: a clock of "
                         f"{MIN_DIVISOR * baud / 1e6:.3f} MHz or more, not {clock_hz / 1e6:.3f} MHz")
    error = abs(clock_hz / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"{baud} baud from {clock_hz / 1e6:.3f} MHz is off by {error:.1%} "
                         f"(divisor {divisor}); pick a clock that is a multiple of the baud rate")
    return divisor


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be an integer of at least {MIN_DIVISOR} clock cycles a bit, "
                         f"not {divisor!r}")


class UartRx(wiring.Component):
    """8N1 receiver: a byte on ``o`` after each stop bit; ``overrun`` and ``framing`` pulse on
    a lost byte or a missing stop bit. ``rx`` idles high."""

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "overrun": Out(1), "framing": Out(1)})

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(divisor))
        bit = Signal(range(8))
        shift = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):           # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), bit.eq(bit + 1), timer.eq(divisor - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: sends each byte taken on ``i``, ``divisor`` cycles a bit. ``tx`` idles
    high."""

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        timer = Signal(range(divisor))
        bits = Signal(range(FRAME_BITS + 1))
        shift = Signal(FRAME_BITS, init=~0)
        m.d.comb += self.tx.eq(shift[0])
        last_cycle = (timer == 0) & (bits <= 1)
        m.d.comb += self.i.ready.eq(last_cycle)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shift.eq(Cat(0, self.i.payload, 1)), bits.eq(FRAME_BITS),
                         timer.eq(divisor - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(bits != 0):
            m.d.sync += [shift.eq(Cat(shift[1:], 1)), bits.eq(bits - 1), timer.eq(divisor - 1)]
        return m
