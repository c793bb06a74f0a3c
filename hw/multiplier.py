"""A registered multiplier: ``p`` is ``a · b`` of the operands presented ``LATENCY`` = 2 cycles
earlier (each operand registered, then the product).

On ECP5 (``primitive="MULT18X18D"``) the multiplier block is instantiated with its input and output
registers in use, so that the routes into the block and out of it are each a whole clock period:
Yosys never packs fabric registers into MULT18X18D (../shared/TOOLCHAIN.md), and a multiplier
placed far from its operands put its routes in and out of the block, with the block's own delay
between them, on one path (the ULX3S-85F's slowest, 7.2 + 4.9 ns of routing around the block).
The registers are on CLK0, CE0 = 1 and RST0 = 0, as nextpnr times them (both operands registered:
nextpnr times a block with one of them unregistered as if neither were); they are never reset (the
products' users say when a product counts). Without a primitive the same registers are fabric
flip-flops and the product an inferred multiply: the same cycle-for-cycle behaviour, which
``sim/MULT18X18D.v`` models for the simulators (``tests/hw/test_multiplier.py`` checks the two
against each other).
"""

from amaranth import ClockSignal, Const, Instance, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

PRIMITIVES = (None, "MULT18X18D")
PORT_BITS = 18          # MULT18X18D's operands (each signed or unsigned as a whole)
LATENCY = 2


def check_primitive(name: str, primitive):
    """Raise unless ``primitive`` (the parameter ``name``) is one of :data:`PRIMITIVES`."""
    if primitive not in PRIMITIVES:
        raise ValueError(f"{name} must be one of {PRIMITIVES}, not {primitive!r}")


def product_shape(a_shape, b_shape):
    """The shape that holds every product of ``a_shape`` and ``b_shape`` (both Amaranth shapes)."""
    width = a_shape.width + b_shape.width
    return signed(width) if a_shape.signed or b_shape.signed else unsigned(width)


class RegisteredMultiplier(wiring.Component):
    """``p`` = ``a · b`` ``LATENCY`` cycles after ``a`` and ``b`` were presented."""

    def __init__(self, a_shape, b_shape, *, primitive: str | None = None):
        a_shape, b_shape = (unsigned(s) if isinstance(s, int) else s for s in (a_shape, b_shape))
        check_primitive("primitive", primitive)
        if primitive is not None:
            for name, shape in (("a", a_shape), ("b", b_shape)):
                if shape.width > PORT_BITS:
                    raise ValueError(f"{primitive}'s operands are at most {PORT_BITS} bits, "
                                     f"{name} is {shape.width}: split the product or build it without "
                                     f"a primitive")
        self._a_shape, self._b_shape = a_shape, b_shape
        self._primitive = primitive
        super().__init__({"a": In(a_shape), "b": In(b_shape), "p": Out(product_shape(a_shape, b_shape))})

    def elaborate(self, platform):
        m = Module()
        if self._primitive is None:
            a, b = Signal(self._a_shape, reset_less=True), Signal(self._b_shape, reset_less=True)
            m.d.sync += [a.eq(self.a), b.eq(self.b)]
            p = Signal(self.p.shape(), reset_less=True)
            m.d.sync += p.eq(a * b)
            m.d.comb += self.p.eq(p)
            return m

        ports = {}
        for name, value in (("A", self.a), ("B", self.b)):
            # each operand extended to the port's 18 bits, wired bit by bit (TOOLCHAIN.md)
            extended = Signal(PORT_BITS, name=f"port_{name.lower()}")
            m.d.comb += extended.eq(value.as_signed() if value.shape().signed else value)
            for bit in range(PORT_BITS):
                ports[f"i_{name}{bit}"] = extended[bit]
        product = Signal(2 * PORT_BITS, name="port_p")
        for bit in range(2 * PORT_BITS):
            ports[f"o_P{bit}"] = product[bit]
        # C tied to 0 as Yosys's own mapping does (+/lattice/dsp_map_18x18.v); the other clocks and
        # the shift chains left unconnected: SRIA/SRIB are the neighbouring block's cascade, which
        # nextpnr cannot route a constant to
        ports.update({f"i_C{bit}": Const(0, 1) for bit in range(PORT_BITS)})
        m.d.comb += self.p.eq(product[:len(self.p)])
        m.submodules.block = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0",
            p_REG_OUTPUT_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0",
            p_REG_OUTPUT_CE="CE0", p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0",
            p_REG_OUTPUT_RST="RST0", p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=Const(int(self._a_shape.signed), 1), i_SIGNEDB=Const(int(self._b_shape.signed), 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal(), i_CE0=Const(1, 1), i_RST0=Const(0, 1),
            **ports)
        return m
