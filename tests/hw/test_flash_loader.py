# amaranth: UnusedElaboratable=no
"""FlashLoader against the SpiFlashModel in the Amaranth simulator: the words written as a flash
image at an offset come back in order, with output stalls; ``done`` after :meth:`cycles`."""

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring

from hw.flash_loader import FlashLoader, flash_image
from hw.testing import run, stream_get
from sim.spi_flash import SpiFlashModel


def loader_with_flash(loader, image):
    top = Module()
    top.submodules.loader = loader
    top.submodules.flash = flash = SpiFlashModel(image)
    wiring.connect(top, loader.spi, flash.spi)
    return top


@pytest.mark.parametrize("word_bits, words, offset, divider, seed", [
    (20, 9, 5, 2, 1), (64, 4, 0, 3, 2), (8, 12, 100, 2, 3)])
def test_words_come_back_in_order(word_bits, words, offset, divider, seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    data = [rng.getrandbits(word_bits) for _ in range(words)]
    image = bytes(rng.getrandbits(8) for _ in range(offset)) + flash_image(data, word_bits) + b"\x5a"
    loader = FlashLoader(offset=offset, words=words, word_bits=word_bits, divider=divider)
    got = []

    async def get(ctx):
        got.extend(int(w) for w in await stream_get(ctx, loader.o, words, rng, 0.3))

    run(loader_with_flash(loader, image), [get], max_cycles=3 * loader.cycles(),
        vcd_name=f"flash_loader_{seed}")
    assert got == data


@pytest.mark.parametrize("word_bits, words, divider", [(16, 5, 2), (24, 3, 3), (7, 2, 5)])
def test_cycles_to_done(word_bits, words, divider):
    data = list(range(words))
    loader = FlashLoader(offset=3, words=words, word_bits=word_bits, divider=divider)
    done_at = []

    async def watch(ctx):
        ctx.set(loader.o.ready, 1)
        cycle = 0
        while not done_at:
            await ctx.tick()
            cycle += 1
            if ctx.get(loader.done):
                done_at.append(cycle)

    run(loader_with_flash(loader, b"\0\0\0" + flash_image(data, word_bits)), [watch],
        max_cycles=2 * loader.cycles(), vcd_name="flash_loader_cycles")
    assert done_at == [loader.cycles()]


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="divider must be an integer from 2"):
        FlashLoader(offset=0, words=1, word_bits=8, divider=1)
    with pytest.raises(ValueError, match="do not fit a 24-bit flash address space"):
        FlashLoader(offset=(1 << 24) - 2, words=2, word_bits=16)
