"""Small combinational helpers shared by the blocks."""

from amaranth import Cat, Const, Mux, Signal, signed, unsigned
from amaranth.utils import exact_log2
from amaranth.lib import data


def magnitude(value):
    """|value| as an unsigned value (one bit wider than a signed input needs at its minimum)."""
    return Mux(value < 0, -value, value).as_unsigned()


def sign_magnitude(width: int) -> data.StructLayout:
    """A value stored as its ``width``-bit magnitude and its sign (``neg``)."""
    return data.StructLayout({"mag": unsigned(width), "neg": 1})


def sign_magnitude_beat(m, values, width: int, lanes: int):
    """``lanes`` signed ``values`` as a comb array of :func:`sign_magnitude` (``width``-bit
    magnitudes)."""
    beat = Signal(data.ArrayLayout(sign_magnitude(width), lanes))
    for lane in range(lanes):
        value = values[lane]
        m.d.comb += [beat[lane].mag.eq(magnitude(value)[:width]), beat[lane].neg.eq(value < 0)]
    return beat


def register_sign_magnitude(m, i, width: int, lanes: int, take=None):
    """The beat stream ``i`` transfers (``lanes`` signed values; those where ``take`` is high if
    given), registered as magnitudes and signs: ``(beat, valid)`` one cycle later, ``beat`` an
    array of :func:`sign_magnitude`."""
    beat = Signal(data.ArrayLayout(sign_magnitude(width), lanes), reset_less=True)   # (valid says)
    valid = Signal()
    m.d.sync += [valid.eq(i.valid & i.ready if take is None else take),
                 beat.eq(sign_magnitude_beat(m, i.payload.data, width, lanes))]
    return beat, valid


def tree_stages(count: int) -> int:
    """Registered stages of :func:`pipelined_max` over ``count`` values: one comparator level a
    stage (at least one stage)."""
    return max(1, (count - 1).bit_length())


def max_pairs(m, values, name: str):
    """One level of a comparator tree: the larger of each pair of ``values`` (unsigned, equal
    widths) in comb signals, an odd last value passed on."""
    level = []
    for index in range(0, len(values) - 1, 2):
        a, b = values[index], values[index + 1]
        node = Signal.like(a, name=f"{name}_{index // 2}")
        m.d.comb += node.eq(Mux(b > a, b, a))
        level.append(node)
    return level + values[len(values) - len(values) % 2:]


def pipelined_max(m, values, valid, name: str):
    """The largest of ``values`` (unsigned, equal widths; ``valid`` says they are taken) by a tree
    of comparators with a register after every level (one carry chain a stage), so a beat's
    maximum of any lane count meets the ECP5 timing discipline: returns ``(maximum, valid,
    stages)``, the maximum and its valid :func:`tree_stages` cycles later and every stage's valid
    (the tree holds a beat while any is high)."""
    level, level_valid, stages = list(values), valid, []
    for stage in range(tree_stages(len(values))):
        level = max_pairs(m, level, f"{name}{stage}_pair")
        registers = [Signal.like(value, name=f"{name}{stage}_{index}") for index, value in enumerate(level)]
        registered_valid = Signal(name=f"{name}{stage}_valid")
        m.d.sync += [r.eq(v) for r, v in zip(registers, level)] + [registered_valid.eq(level_valid)]
        level, level_valid = registers, registered_valid
        stages.append(registered_valid)
    return level[0], level_valid, stages


def bank_address(bank, depth: int, address):
    """``address`` inside bank ``bank`` (0 or 1) of a memory of two ``depth``-deep banks."""
    return Mux(bank, address + depth, address)


def store_beat(m, port, length, depth: int, data, overflowed=None, bank=0, parts: int = 1):
    """In the current (accepting) state: write ``data`` to ``port`` at ``length`` (in ``bank`` of
    two ``depth``-deep banks; no write with ``port`` None, the beat only counted) and count it;
    beats beyond ``depth`` words are dropped and set ``overflowed``. With ``parts`` beats a word (a
    power of two; ``port`` with a write enable a part) ``length`` counts beats and a beat goes into
    its part of word ``length // parts``."""
    part_bits = exact_log2(parts)
    with m.If(length < depth * parts):
        if port is not None:
            m.d.comb += port.addr.eq(bank_address(bank, depth, length >> part_bits))
            if parts == 1:
                m.d.comb += [port.data.eq(data), port.en.eq(1)]
            else:
                m.d.comb += [port.data.eq(Cat(data for _ in range(parts))),
                             port.en.eq(Cat(length[:part_bits] == part for part in range(parts)))]
        m.d.sync += length.eq(length + 1)
    if overflowed is not None:
        with m.Else():
            m.d.sync += overflowed.eq(1)


def divisors(n: int, multiple_of: int = 1) -> list[int]:
    """The divisors of ``n`` that are multiples of ``multiple_of``, for errors that say what fits."""
    return [d for d in range(1, n + 1) if n % d == 0 and d % multiple_of == 0]


def check_integers(specs):
    """Constructor parameter checks: each spec is ``(name, value)`` for a positive integer or
    ``(name, value, low, high)`` for an integer in that range; the first that fails raises a
    ValueError naming the parameter, what would fit and the value given."""
    for name, value, *bounds in specs:
        low, high = bounds or (1, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (
                high is not None and value > high):
            if high is None:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
            raise ValueError(f"{name} must be an integer from {low} to {high}, not {value!r}")


def or_all(values):
    """The OR of ``values``: its bit length is their maximum's (unsigned values), without the
    comparators of a maximum."""
    result = 0
    for value in values:
        result = result | value
    return result


def bit_length(m, value, name: str):
    """A comb signal holding the bit length of unsigned ``value`` (0 for 0): a priority encoder."""
    result = Signal(range(len(value) + 1), name=name)
    for b in range(len(value)):
        with m.If(value[b]):
            m.d.comb += result.eq(b + 1)
    return result


def top_bit_tree(value) -> tuple:
    """The index of ``value``'s top set bit, ``(index, any_set)``: ``index`` a value of
    ``ceil(log2(len(value)))`` bits (0 where no bit is set, so look at ``any_set``), by a tree of
    halves padded to a power of two — a half's index, the upper half's where it has a bit set, and
    that choice as the next index bit, so a level is a multiplexer and no adder. ``value`` is
    not empty."""
    def tree(bits):
        if len(bits) == 1:
            return [], bits[0]
        half = len(bits) // 2
        low_index, low_any = tree(bits[:half])
        high_index, high_any = tree(bits[half:])
        return ([Mux(high_any, high, low) for high, low in zip(high_index, low_index)] + [high_any],
                low_any | high_any)
    padded = Cat(value, Const(0, (1 << (len(value) - 1).bit_length()) - len(value)))
    index, any_set = tree([padded[bit] for bit in range(len(padded))])
    return Cat(*index), any_set


def bit_length_tree(m, value, name: str):
    """:func:`bit_length` in logarithmic depth, for wide values where the priority chain of
    :func:`bit_length` is one LUT a bit (48 bits: 11 ns on ECP5): :func:`top_bit_tree`'s index,
    then one increment (0 where no bit is set). The former tree added each half's offset, a carry
    chain a level (the ULX3S-85F's slowest path through the norm's shift, 14 ns)."""
    result = Signal(range(len(value) + 1), name=name)
    if len(value):                   # (an empty value's bit length is 0)
        index, any_set = top_bit_tree(value)
        m.d.comb += result.eq(Mux(any_set, Cat(index, Const(0, 1)) + 1, 0))
    return result


def rounded_right_shift(m, value, shift, name: str):
    """``rshift_round(value, shift)`` for ``shift > 0`` (``(value + 2^(shift−1)) >> shift``, signed);
    ``value`` itself otherwise. Shifts past the value's width give the same result as one bit past
    it, so the shifter is clamped there.

    Computed as ``((value >> (shift − 1)) + 1) >> 1`` — the same number (write ``value`` as
    ``a·2^(shift−1) + b`` with ``0 ≤ b < 2^(shift−1)``: both are ``floor((a + 1) / 2)``) — so the
    rounding is one increment after the barrel shift instead of a decoded half added before it:
    on ECP5 a 37-bit operand takes 299 LUT4 at 63 MHz (``tritium bench helpers``) where the former
    pre-added half took 698 at 44 MHz in the same synthesis."""
    right = Signal(range(len(value) + 2), name=f"{name}_right")
    m.d.comb += right.eq(Mux(shift > len(value) + 1, len(value) + 1, shift))
    result = Signal(signed(len(value) + 1), name=name)
    m.d.comb += result.eq(Mux(shift > 0, ((value >> (right - 1)[:len(right)]) + 1) >> 1, value))
    return result


def read_pass(m, issue, address, count, advance, stages, readable=1):
    """In the current state: issue ``address`` 0 … ``count``−1 into a read pipeline, one per cycle
    that ``advance``\\ s and the next address is ``readable``; returns the condition that every
    address has been issued and has left the pipeline (``stages``: its valid bits)."""
    m.d.comb += issue.eq((address < count) & readable)
    with m.If(advance & issue):
        m.d.sync += address.eq(address + 1)
    return pipeline_drained(address >= count, advance, stages)


def pipeline_drained(done, advance, stages):
    """The condition that a pipeline's input is ``done`` and every beat has left it (``stages``: its
    valid bits; ``advance``: it moves)."""
    drained = done & advance
    for valid in stages:
        drained &= ~valid
    return drained
