"""A SPI NOR flash for simulation: answers READ (0x03, 24-bit address) with its contents, in the
clock domain of the design that drives it (it samples ``sck`` each cycle and acts on its edges).
Amaranth, so it runs in the Amaranth simulator and, inside a test top, in Verilator."""

from amaranth import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In

from hw.flash_loader import ADDRESS_BITS, READ, SpiSignature


class SpiFlashModel(wiring.Component):
    """``contents`` (bytes) from address 0; reads past the end give 0xFF, as erased flash does.
    Any command other than READ is ignored until chip select rises."""

    def __init__(self, contents: bytes):
        self._contents = bytes(contents) or b"\xff"
        super().__init__({"spi": In(SpiSignature)})

    def elaborate(self, platform):
        m = Module()
        size = len(self._contents)
        m.submodules.rom = rom = memory.Memory(shape=8, depth=size, init=list(self._contents))
        read = rom.read_port(domain="comb")
        spi = self.spi
        previous = Signal()
        m.d.sync += previous.eq(spi.sck)
        rising, falling = spi.sck & ~previous, ~spi.sck & previous
        header = Signal(32)
        received = Signal(range(33))
        address = Signal(ADDRESS_BITS)
        bit = Signal(3)
        m.d.comb += read.addr.eq(address)
        byte = Signal(8)
        m.d.comb += byte.eq(read.data | (address >= size).replicate(8))
        with m.If(spi.cs_n):
            m.d.sync += [received.eq(0), bit.eq(0)]
        with m.Elif(rising & (received < 32)):
            m.d.sync += [header.eq((header << 1) | spi.mosi), received.eq(received + 1)]
        with m.Elif(falling & (received == 32) & (header[ADDRESS_BITS:] == READ)):
            m.d.sync += [spi.miso.eq(byte.bit_select(~bit, 1)), bit.eq(bit + 1)]
            with m.If(bit == 7):
                m.d.sync += address.eq(address + 1)
        with m.If(rising & (received == 31)):
            m.d.sync += address.eq(((header << 1) | spi.mosi)[:ADDRESS_BITS])
        return m
