"""``tritium verilog``: standalone synthesizable Verilog of one gateware block (or the whole
engine with a model's weights), and a table of its ports."""

from pathlib import Path

# Each block's default Verilog module name.
MODULES = {"array": "ternary_array", "quantizer": "absmax_quantizer", "scale-unit": "scale_unit",
           "rms-quantizer": "rms_quantizer", "sampler": "sampler", "attention": "attention_head",
           "engine": "tritium_engine"}


def block(name: str, options):
    """The component ``name`` (a key of MODULES but ``engine``) with its parameters from
    ``options`` (the parsed arguments); the constructor validates them (ValueError)."""
    o = options
    if name == "array":
        from hw.ternary_array import TernaryArray
        return TernaryArray(rows=o.rows, cols=o.cols, simd=o.simd, k_max=o.k_max, act_width=o.act_width)
    if name == "rms-quantizer":
        from hw.rms_quantizer import RmsQuantizer
        return RmsQuantizer(width=o.width, lanes=o.lanes, max_length=o.max_length)
    if name == "attention":
        from hw.attention import AttentionHead
        return AttentionHead(head_dim=o.head_dim, lanes=o.lanes, max_positions=o.max_positions)
    if name == "sampler":
        from hw.sampler import Sampler
        return Sampler(logit_width=o.logit_width, vocab_max=o.vocab_max, k_max=o.k_max)
    if name == "scale-unit":
        from hw.scale_unit import ScaleUnit
        return ScaleUnit(exp_bits=o.exp_bits, int_bits=o.int_bits)
    from hw.quantizer import AbsmaxQuantizer
    return AbsmaxQuantizer(width=o.width, lanes=o.lanes, max_length=o.max_length)


def engine(model_dir: Path, *, k_max: int, sizes: dict, flash_offset=None, spram: bool = False):
    """The Engine of a checkpoint with the ``sizes`` given (None: the model's default)."""
    from hw.engine import Engine, EngineSizes
    from model.checkpoint import load_weights
    from model.integer import IntegerModel

    if spram and flash_offset is None:
        raise ValueError("--spram needs --flash-offset (SPRAM is filled from flash at boot)")
    model = IntegerModel(load_weights(model_dir))
    params = EngineSizes.default(model.config).as_dict()
    params.update({k: v for k, v in sizes.items() if k in params and v is not None})
    try:
        return Engine(model, k_max=k_max, flash_offset=flash_offset, spram=spram, **params)
    except ValueError as e:
        raise ValueError(f"engine: {e}") from None


def write(console, component, output: Path, name: str, flash_offset=None):
    """Write ``component``'s Verilog (module ``name``) to ``output``, an engine's flash image beside
    it when it loads from ``flash_offset``, and show its ports."""
    from amaranth import Shape
    from amaranth.back import verilog
    from rich.table import Table

    output.write_text(verilog.convert(component, name=name, emit_src=False))
    if flash_offset is not None:
        image = output.with_suffix(".weights.bin")
        image.write_bytes(component.flash_image())
        console.print(f"{image}: the weights image to write at flash byte {flash_offset}")
    table = Table(title=f"{output}: module {name}")
    for column in ("port", "direction", "bits"):
        table.add_column(column)
    table.add_row("clk", "input", "1")
    table.add_row("rst", "input", "1 (synchronous, active high)")
    for path, member in component.signature.members.flatten():
        if member.is_port:
            table.add_row("__".join(map(str, path)), "input" if member.flow.name == "In" else "output",
                          str(Shape.cast(member.shape).width))
    console.print(table)


def describe_engine(component) -> str:
    return (f"Engine: rows {component.rows}, simd {component.simd}, lanes {component.lanes}, "
            f"attention lanes {component.attention_lanes}, LM-head lanes {component.head_lanes}; "
            f"{component.linear.rom_words} weight words of {component.linear.rom_word_bits} bits")
