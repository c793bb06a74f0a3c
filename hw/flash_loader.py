"""Boot-time loading from SPI flash: :class:`FlashLoader` reads ``words`` words of ``word_bits``
bits starting at byte ``offset`` of a standard SPI NOR flash (command 0x03, READ: 24-bit address,
then data bytes for as long as chip select stays low) and streams them out, once, after reset.

For boards whose block RAM the bitstream cannot initialise: the iCE40 UP5K keeps the ternary
weights in SPRAM (``TernaryLinear(loaded=True)``), filled from the configuration flash where
the weights image (:func:`flash_image`) is written beside the bitstream.

SPI mode 0, most significant bit first: the loader sets ``mosi`` while ``sck`` is low and samples
``miso`` as it raises ``sck``; each half period of ``sck`` is ``divider`` clock cycles. A word is
its bytes in little-endian order (byte ``i`` holds bits ``8i … 8i+7``). While ``o`` is not ready the
clock pauses. ``divider`` is at least 2 (``sck`` at most a quarter of the clock), which leaves a
flash (or :class:`sim.spi_flash.SpiFlashModel`, sampled in the same clock) a whole clock cycle to
change ``miso`` after a falling edge. **Cycles** to ``done``: :meth:`cycles`.
"""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .arith import check_integers

READ = 0x03
ADDRESS_BITS = 24

SpiSignature = wiring.Signature({"sck": Out(1), "cs_n": Out(1, init=1), "mosi": Out(1),
                                 "miso": In(1)})


def flash_image(words, word_bits: int) -> bytes:
    """The bytes the loader turns back into ``words`` (integers of ``word_bits`` bits)."""
    size = -(-word_bits // 8)
    return b"".join(int(w).to_bytes(size, "little") for w in words)


class FlashLoader(wiring.Component):
    """Reads ``words`` words of ``word_bits`` bits from SPI flash at ``offset`` once after reset
    and streams them out; ``done`` once every word is sent, :meth:`cycles` after reset.
    """

    def __init__(self, *, offset: int, words: int, word_bits: int, divider: int = 2):
        check_integers((("offset", offset, 0, (1 << ADDRESS_BITS) - 1), ("words", words),
                        ("word_bits", word_bits), ("divider", divider, 2, 1 << 16)))
        self._bytes = -(-word_bits // 8)
        if offset + words * self._bytes > 1 << ADDRESS_BITS:
            raise ValueError(f"{words} words of {self._bytes} bytes from byte {offset} do not fit a "
                             f"24-bit flash address space")
        self._offset, self._words, self._word_bits, self._divider = offset, words, word_bits, divider
        super().__init__({"spi": Out(SpiSignature), "o": Out(stream.Signature(word_bits)),
                          "done": Out(1)})

    def cycles(self) -> int:
        """Clock edges from reset to ``done``, ``o`` always ready: a whole ``sck`` period per bit
        (a word is handed over within the half period after its last bit), one to finish."""
        return 2 * self._divider * (32 + 8 * self._bytes * self._words) + 1

    def elaborate(self, platform):
        m = Module()
        header = (READ << ADDRESS_BITS) | self._offset
        word_bits = 8 * self._bytes

        half = Signal(range(self._divider))          # clock cycles into this half period
        tick = half == self._divider - 1
        with m.If(tick):
            m.d.sync += half.eq(0)
        with m.Else():
            m.d.sync += half.eq(half + 1)

        sent = Signal(range(33))                      # command and address bits sent
        shift = Signal(32, init=header)
        got = Signal(range(word_bits + 1))            # bits of the current word received
        word = Signal(word_bits)
        count = Signal(range(self._words + 1))
        m.d.comb += [self.spi.mosi.eq(shift[-1]), self.o.payload.eq(word[:self._word_bits])]

        with m.FSM():
            with m.State("START"):
                m.d.sync += self.spi.cs_n.eq(0)
                with m.If(tick):
                    m.next = "COMMAND"
            with m.State("COMMAND"):
                with m.If(tick):
                    m.d.sync += self.spi.sck.eq(~self.spi.sck)
                    with m.If(self.spi.sck):         # falling edge: the next bit goes out
                        m.d.sync += [shift.eq(shift << 1), sent.eq(sent + 1)]
                        with m.If(sent == 31):
                            m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += self.spi.sck.eq(~self.spi.sck)
                    with m.If(~self.spi.sck):        # rising edge: sample a bit
                        # bytes arrive MSB first and fill the word from its low byte up: bit
                        # 7 − got % 8 of byte got // 8
                        m.d.sync += [word.bit_select(got ^ 7, 1).eq(self.spi.miso),
                                     got.eq(got + 1)]
                        with m.If(got == word_bits - 1):
                            m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [got.eq(0), count.eq(count + 1)]
                    with m.If(count == self._words - 1):
                        m.d.sync += [self.spi.cs_n.eq(1), self.spi.sck.eq(0)]
                        m.next = "DONE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m
