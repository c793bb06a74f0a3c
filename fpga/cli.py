"""The ``tritium`` command line: the NumPy models, gateware blocks, the engine in simulation, board
builds and flashing, the design-space explorer, benchmarks, and chat with a board (or its
simulation) over the byte protocol.

This module parses arguments and dispatches to the module that owns each command's work and
tables; :func:`main` is the one place known errors become a one-line message and exit code 2.
Subcommands import what they need when they run, so ``tritium inspect`` does not pay for Amaranth.
"""

import argparse
import sys
from pathlib import Path

from model import paths


def _console():
    from fpga.console import console
    return console()


def cmd_inspect(args) -> int:
    from fpga.models import inspect

    inspect(_console(), args.checkpoint)
    return 0


def _encode(args, checkpoint: Path) -> tuple[list[int], str | None]:
    """The prompt's token ids (``--ids``, or ``--prompt`` through the checkpoint's tokenizer) and
    its text (None for ids)."""
    if args.ids is not None:
        return [int(t) for t in args.ids.split(",") if t.strip()], None
    from model.tokenizer import encode_text, load_tokenizer

    return encode_text(load_tokenizer(checkpoint), args.prompt), args.prompt


def cmd_generate(args) -> int:
    from fpga.models import generate

    prompt, text = _encode(args, args.checkpoint)
    generate(_console(), args.checkpoint, prompt, text=text, integer=args.integer, count=args.n,
             temperature=args.temperature, seed=args.seed, top_k=args.top_k)
    return 0


def cmd_random_model(args) -> int:
    from fpga.models import random_model

    random_model(_console(), args.output, seed=args.seed, master=args.master)
    return 0


def cmd_compare(args) -> int:
    from fpga.models import compare

    compare(_console(), args.checkpoint, positions=args.positions, seed=args.seed,
            validation=args.validation)
    return 0


def cmd_train(args) -> int:
    from fpga.models import train

    train(_console(), args.config, precision=args.precision, out=args.output, steps=args.steps,
          work=args.work, resume=not args.restart, threads=args.threads)
    return 0


def cmd_report(args) -> int:
    from fpga.models import report

    report(_console(), args.output, positions=args.positions)
    return 0


def _sizes(args) -> dict:
    from hw.engine import EngineSizes
    return {k: getattr(args, k) for k in EngineSizes.names()}


def cmd_verilog(args) -> int:
    from fpga.flow import verilog

    console = _console()
    if args.block == "engine":
        component = verilog.engine(args.model, k_max=args.k_max, sizes=_sizes(args),
                                   flash_offset=args.flash_offset, spram=args.spram)
        console.print(verilog.describe_engine(component))
    else:
        component = verilog.block(args.block, args)    # parameters are validated here, before any output
    verilog.write(console, component, args.output, args.name or verilog.MODULES[args.block],
                  flash_offset=getattr(args, "flash_offset", None))
    return 0


def cmd_sim(args) -> int:
    from fpga.simulate import engine_params, generate

    prompt, text = _encode(args, args.model)
    if not prompt:
        raise ValueError("the prompt is empty")
    params = engine_params(args.model, args.k_max, **_sizes(args))
    return generate(_console(), params, prompt, text=text, count=args.n, temperature=args.temperature,
                    top_k=args.top_k, seed=args.seed, check=args.check)


def _board(name):
    from fpga.boards import BOARDS

    if name not in BOARDS:
        raise ValueError(f"no board {name!r}; boards: {', '.join(BOARDS)}")
    return BOARDS[name]


def cmd_build(args) -> int:
    from fpga.console import status
    from fpga.flow.build import BuildError, build, show_report

    board = _board(args.board)
    console = _console()
    if args.time_limit is not None and args.time_limit <= 0:
        raise ValueError(f"--time-limit is in minutes and must be positive, not {args.time_limit:g}")
    engine = board.vector_engine_parameters() if args.engine == "vector" else None
    try:
        with status(console, f"{board.name}: ") as say:
            report = build(board, root=args.root, model_dir=args.model, engine=engine, status=say,
                           time_limit=args.time_limit * 60 if args.time_limit else None)
    except BuildError as e:
        console.print(f"[red]tritium build: {e}[/red]")
        return 1
    show_report(console, report)
    return 0


def cmd_explore(args) -> int:
    from fpga.console import status
    from fpga.perf import explore
    from model import load_weights

    console = _console()
    if args.refit:
        from fpga.perf.resource_fit import refit

        with status(console) as say:
            model = refit(args.synthesize, args.root / "explore-fit", say)
        console.print(f"fitted on {model['points']} synthesis runs; largest residual: "
                      + ", ".join(f"{k} {v}%" for k, v in model["residual_percent"].items()))
        if not args.board:
            return 0
    if args.project:
        from fpga.perf import projection

        rows = projection.project()
        console.print(projection.table(rows))
        projection.write(rows)
        console.print("wrote docs/performance.md (the projection)")
        return 0
    if not args.board:
        raise ValueError("--board is required (or --refit or --project alone)")
    board = _board(args.board)
    cfg = load_weights(args.model or paths.REPO / board.model).config
    sizes = _sizes(args)
    title = f"{board.name}: {args.model or board.model}"
    if all(sizes.values()):                     # one point: its prediction, or why it is refused
        buffers = args.buffers or ("lut" if board.distributed_ram else "block")
        return 0 if explore.show_point(console, board, cfg, sizes, buffers, title) else 1
    explore.show_sweep(console, board, cfg, {k: v for k, v in sizes.items() if v}, title, args.plot)
    return 0


def cmd_flash(args) -> int:
    from fpga.flow.flash import FlashError, flash

    board = _board(args.board)
    try:
        flash(board, bitstream=args.bitstream, to_flash=args.flash, dry_run=args.dry_run,
              root=args.root, verbose=args.verbose)
    except FlashError as e:
        print(f"tritium flash: error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_doctor(args) -> int:
    from fpga.boards import BOARDS
    from fpga.host.doctor import report

    lines, status = report([BOARDS[args.board]] if args.board else list(BOARDS.values()))
    print("\n".join(lines))
    return status


def cmd_chat(args) -> int:
    import contextlib

    from fpga.console import status
    from fpga.host.chat import Conversation, chat
    from fpga.host.link import serial_link
    from model.tokenizer import load_tokenizer

    board = _board(args.board)
    model_dir = args.model or paths.REPO / board.model
    tokenizer = load_tokenizer(model_dir)
    console = _console()
    if not args.sim and not args.port:
        from fpga.host.ports import describe, pick_port

        port = pick_port(board)         # the one plugged in, else LinkError saying what to do
        args.port = port.device
        console.print(f"{board.name}: using {describe(port)} (--port chooses another)")
    if args.check and args.prompt is None:
        raise ValueError("--check needs --prompt (one turn from an empty context)")
    if args.engine == "vector" and (not args.sim or args.netlist):
        raise ValueError("--engine vector runs in simulation only: it needs --sim (and no --netlist)")
    netlist = None
    if args.netlist:
        from fpga.flow.netlist import Netlist

        if not args.sim:
            raise ValueError("--netlist simulates the board's netlist: it needs --sim")
        netlist = Netlist(board)
    if args.prompt is not None:
        from model.tokenizer import encode_text

        encode_text(tokenizer, args.prompt)        # before minutes of building a virtual board
    check_model = None
    if args.check:
        from fpga.models import load_model

        check_model = load_model(model_dir, integer=True)
    with contextlib.ExitStack() as stack:
        if args.sim:
            from fpga.host.virtual import board_soc_params, open_board

            params = board_soc_params(board, model_dir, vector=args.engine == "vector")
            with status(console) as say:
                link = stack.enter_context(open_board(params, timeout=args.timeout, status=say,
                                                      netlist=netlist))
        else:
            link = stack.enter_context(serial_link(args.port, args.baud or board.baud, args.timeout))
        state = link.status()
        if state["vocab"] != tokenizer.get_vocab_size():
            raise ValueError(f"the board's model has {state['vocab']} tokens, the tokenizer of "
                             f"{model_dir} {tokenizer.get_vocab_size()}: a different model")
        link.reset()
        return chat(console, Conversation(link, tokenizer, state["context"]), prompt=args.prompt,
                    count=args.n, clock_mhz=board.clock_mhz, simulated=args.sim, ids=args.ids,
                    check_model=check_model, temperature=args.temperature, top_k=args.top_k,
                    seed=args.seed)


PLAIN_BENCHES = ("helpers", "vector", "numerics")   # commands with nothing but --docs


def cmd_bench(args) -> int:
    from fpga.console import status

    console = _console()
    if not args.docs.is_dir():
        console.print(f"[red]--docs {args.docs}: no such directory; pass the folder that holds (or will "
                      "hold) benchmarks.md[/red]")
        return 1
    if args.what == "boards":
        from fpga.bench.boards import bench_boards, table

        with status(console) as say:
            rows = bench_boards(args.boards, root=args.root, rebuild=args.rebuild, docs=args.docs,
                                status=say)
        console.print(table(rows))
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "explore":
        from fpga.bench.explore import bench_explore, table

        with status(console) as say:
            result = bench_explore(args.docs, args.root, remeasure=args.remeasure,
                                   rebuild=args.rebuild, pack_only=args.pack_only, status=say)
        console.print(table(result))
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "engine":
        from fpga.bench.engine import bench_engine, table

        with status(console) as say:
            results = bench_engine(args.docs, say)
        console.print(table(results))
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 1 if any(r["error"] for r in results) else 0
    if args.what in PLAIN_BENCHES:        # bench_WHAT(docs, say) and table(results) in fpga.bench.WHAT
        import importlib

        module = importlib.import_module(f"fpga.bench.{args.what}")
        with status(console) as say:
            results = getattr(module, f"bench_{args.what}")(args.docs, say)
        console.print(module.table(results))
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "breakdown":
        from fpga.bench.breakdown import bench_breakdown, table

        with status(console) as say:
            results = bench_breakdown(args.boards, args.docs, say, vector=args.engine == "vector")
        console.print(table(results))
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "fuzz":
        from fpga.bench.fuzz import FuzzFailure, bench_fuzz

        try:
            with status(console) as say:
                fuzzed = bench_fuzz(args.bursts, args.seed, args.docs, say)
        except FuzzFailure as failure:
            console.print(f"[red]{failure}[/red]")
            return 1
        console.print(f"{fuzzed['frames']:,} frames in {fuzzed['bursts']:,} bursts (seed {fuzzed['seed']}), "
                      f"{fuzzed['seconds']:.0f} s: {fuzzed['frames'] / fuzzed['seconds']:,.1f} frames/s; "
                      "the SoC answered and gave the integer model's tokens after every burst")
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "cpu":
        from fpga.bench.cpu import CpuBenchError, bench_cpu, table

        try:
            with status(console) as say:
                results = bench_cpu(args.docs, say)
        except CpuBenchError as error:
            console.print(f"[red]{error}[/red]")
            return 1
        console.print(table(results))
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "blocks":
        from fpga.bench.blocks import bench_blocks, table

        console.print(table(bench_blocks(docs=args.docs)))
        console.print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    from fpga.bench.array import bench_array, tables

    for table in tables(*bench_array(quick=args.quick, docs=args.docs)):
        console.print(table)
    console.print(f"wrote {args.docs / 'benchmarks.md'} and {args.docs / 'bench-array.png'}")
    return 0


SIZE_HELP = {"rows": "TernaryArray rows", "simd": "TernaryArray K-lanes", "lanes": "vector-unit lanes",
             "attention_lanes": "attention and KV-cache lanes", "head_lanes": "LM-head lanes"}


def _size_arguments(p, help_text: str):
    """An option for each of hw.engine.EngineSizes' fields (``--attention-lanes`` etc.)."""
    from hw.engine import EngineSizes

    for name in EngineSizes.names():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int,
                       help=help_text.format(SIZE_HELP[name]))


def add_engine_arguments(p):
    p.add_argument("--model", type=Path, default=Path("models/small"), help="checkpoint directory "
                   "(default models/small)")
    _size_arguments(p, "{} (default: by model size)")
    p.add_argument("--k-max", type=int, default=8, help="largest top-k of the sampler (default 8)")


class _BoardNames:
    """fpga.boards.BOARDS' names as argparse choices, imported only when a --board is checked or
    help is shown (the boards import Amaranth)."""

    def _names(self):
        from fpga.boards import BOARDS
        return list(BOARDS)

    def __iter__(self):
        return iter(self._names())

    def __contains__(self, name):
        return name in self._names()


BOARD_NAMES = _BoardNames()


def _board_argument(p, *flags, help, **options):
    p.add_argument(*flags, choices=BOARD_NAMES, metavar=options.pop("metavar", "BOARD"),
                   help=f"{help}; one of %(choices)s", **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tritium",
                                     description=__doc__.split("\n\n")[0].replace("\n", " ").replace("``", ""))
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="config, parameter count, sparsity and memory of a checkpoint")
    p.add_argument("checkpoint", type=Path)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("generate", help="generate text with the float or integer NumPy model")
    p.add_argument("--checkpoint", type=Path, required=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="prompt text (needs the checkpoint's tokenizer.json)")
    source.add_argument("--ids", help="prompt as comma-separated token ids")
    p.add_argument("-n", type=int, default=50, help="new tokens (default 50)")
    p.add_argument("--integer", action="store_true", help="use the integer (hardware) model")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("random-model", help="write a random (untrained) demo model in HF layout")
    p.add_argument("output", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--master", action="store_true",
                   help="write float master weights (quantized online) instead of packed ternary")
    p.set_defaults(func=cmd_random_model)

    p = sub.add_parser("verilog", help="write standalone synthesizable Verilog for a gateware block")
    blocks = p.add_subparsers(dest="block", required=True)
    b = blocks.add_parser("array", help="TernaryArray: ternary x int8 matmul")
    b.add_argument("--rows", type=int, default=8)
    b.add_argument("--cols", type=int, default=1)
    b.add_argument("--simd", type=int, default=16)
    b.add_argument("--k-max", type=int, default=512)
    b.add_argument("--act-width", type=int, default=8)
    b = blocks.add_parser("quantizer", help="AbsmaxQuantizer: per-token int8 absmax quantizer")
    b.add_argument("--width", type=int, default=24)
    b.add_argument("--lanes", type=int, default=1)
    b.add_argument("--max-length", type=int, default=512)
    b = blocks.add_parser("rms-quantizer", help="RmsQuantizer: RMSNorm folded into the int8 quantizer")
    b.add_argument("--width", type=int, default=32)
    b.add_argument("--lanes", type=int, default=1)
    b.add_argument("--max-length", type=int, default=512)
    b = blocks.add_parser("attention", help="AttentionHead: one head over the KV cache")
    b.add_argument("--head-dim", type=int, default=32)
    b.add_argument("--lanes", type=int, default=8)
    b.add_argument("--max-positions", type=int, default=256)
    b = blocks.add_parser("sampler", help="Sampler: greedy argmax or seeded top-k sampling")
    b.add_argument("--logit-width", type=int, default=40)
    b.add_argument("--vocab-max", type=int, default=128)
    b.add_argument("--k-max", type=int, default=32)
    b = blocks.add_parser("scale-unit", help="ScaleUnit: multiply, add, reciprocal, rsqrt of scales")
    b.add_argument("--exp-bits", type=int, default=12)
    b.add_argument("--int-bits", type=int, default=48)
    b = blocks.add_parser("engine", help="Engine: the whole BitNet engine, a model's weights baked in")
    add_engine_arguments(b)
    b.add_argument("--flash-offset", type=int, help="load the weights at boot from SPI flash at this "
                   "byte address (and write the image beside the Verilog) instead of building them in")
    b.add_argument("--spram", action="store_true", help="with --flash-offset: keep them in iCE40 SPRAM")
    for b in blocks.choices.values():
        b.add_argument("-o", "--output", type=Path, required=True)
        b.add_argument("--name", help="Verilog module name")
        b.set_defaults(func=cmd_verilog)

    p = sub.add_parser("sim", help="run the gateware in simulation")
    sims = p.add_subparsers(dest="what", required=True)
    b = sims.add_parser("generate", help="the Engine generating text in Verilator, cycles per token")
    add_engine_arguments(b)
    source = b.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="prompt text (needs the checkpoint's tokenizer.json)")
    source.add_argument("--ids", help="prompt as comma-separated token ids")
    b.add_argument("-n", type=int, default=64, help="new tokens (default 64)")
    b.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    b.add_argument("--top-k", type=int, default=None)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--check", action="store_true", help="also run the integer model and compare")
    b.set_defaults(func=cmd_sim)

    p = sub.add_parser("build", help="a board's bitstream on the yowasp tools, with a report")
    _board_argument(p, "--board", required=True, help="the board")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the board's model)")
    p.add_argument("--root", type=Path, default=Path("build"), help="builds go to ROOT/BOARD")
    p.add_argument("--engine", choices=("blocks", "vector"), default="blocks",
                   help="the engine of per-step blocks (the boards', default) or the one on the shared "
                        "vector unit (issue 18), at the board's sizes")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop the tools after this long (a report of what nextpnr counted)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("flash", help="program a board with openFPGALoader")
    _board_argument(p, "--board", required=True, help="the board")
    p.add_argument("--bitstream", type=Path, help="default: the last tritium build's")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--flash", action="store_true", help="write the SPI flash (kept at power-off)")
    target.add_argument("--sram", action="store_true", help="load the FPGA only (the default)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("-v", "--verbose", action="store_true", help="show openFPGALoader's output")
    p.add_argument("--root", type=Path, default=Path("build"))
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("doctor", help="is this machine ready for the boards: tools, USB bridges, "
                       "serial ports, permissions (and what to do where not)")
    _board_argument(p, "--board", help="only this board (default all)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("chat", help="talk to a board (or its simulation, --sim) over the byte protocol")
    _board_argument(p, "--board", default="ulx3s-85f", help="the board: its model and clock "
                    "(default ulx3s-85f)")
    p.add_argument("--port", help="the board's serial port, e.g. /dev/ttyUSB0 (default: the one "
                   "plugged in with the board's USB bridge)")
    p.add_argument("--baud", type=int, help="default: the board's")
    p.add_argument("--sim", action="store_true", help="the SoC in Verilator behind a pseudo-terminal")
    p.add_argument("--engine", choices=("blocks", "vector"), default="blocks",
                   help="with --sim: the engine of per-step blocks (the boards', default) or the one on the "
                        "shared vector unit (issue 18, at the board's sizes)")
    p.add_argument("--netlist", action="store_true", help="with --sim: the gate-level netlist Yosys makes "
                   "of the SoC for the board, with the FPGA's cell models (slower to build and run)")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the board's model)")
    p.add_argument("--prompt", help="one turn with this prompt (default: ask, turn after turn)")
    p.add_argument("-n", type=int, default=64, help="tokens a turn (default 64)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ids", action="store_true", help="also print the token ids")
    p.add_argument("--check", action="store_true", help="with --prompt: compare the tokens with the "
                   "integer model's")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a response")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("explore", help="a board's design space: predicted cycles, resources, "
                       "tok/s; the Pareto front")
    _board_argument(p, "--board", help="the board: its part, clock and memory options")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the board's model)")
    _size_arguments(p, "pin the {} (all five: one point)")
    p.add_argument("--buffers", choices=["block", "lut"], help="one point: the shallow buffers in "
                   "block RAM or LUT RAM (default: as the board builds them)")
    p.add_argument("--plot", type=Path, default=Path("build/explore.png"),
                   help="tok/s against LUTs (default build/explore.png)")
    p.add_argument("--refit", action="store_true", help="refit the resource model to the stored "
                   "synthesis runs (fpga/perf/data/)")
    p.add_argument("--synthesize", action="store_true", help="with --refit: run the synthesis "
                   "points again first (about 40 minutes)")
    p.add_argument("--root", type=Path, default=Path("build"), help="--synthesize works here")
    p.add_argument("--project", action="store_true", help="the BitNet b1.58 2B4T projection on "
                   "larger parts (docs/performance.md)")
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("bench", help="measure and write docs/benchmarks.md")
    p.add_argument("what", choices=["array", "blocks", "breakdown", "helpers", "engine", "boards",
                                    "explore", "fuzz", "cpu", "vector", "numerics"])
    _board_argument(p, "--boards", nargs="*", metavar="BOARD", help="boards, breakdown: only these "
                    "(default all)")
    p.add_argument("--rebuild", action="store_true", help="boards, explore: build even where a "
                   "report exists")
    p.add_argument("--pack-only", action="store_true", help="explore: measure the builds' resources "
                   "by synthesis and nextpnr --pack-only (the counts a placed design reports; "
                   "minutes instead of hours, no fmax)")
    p.add_argument("--remeasure", action="store_true", help="explore: simulate again rather than "
                   "use fpga/perf/data/validation.json's cycle counts")
    p.add_argument("--root", type=Path, default=Path("build"), help="boards: the builds' root")
    p.add_argument("--quick", action="store_true", help="a smaller synthesis sweep")
    p.add_argument("--bursts", type=int, default=1_800, help="fuzz: random bursts (default 1,800: "
                   "over 10,000 frames)")
    p.add_argument("--seed", type=int, default=1, help="fuzz: the bursts' seed")
    p.add_argument("--engine", choices=("blocks", "vector"), default="blocks",
                   help="breakdown: the engine of per-step blocks (the boards') or the one on the shared "
                        "vector unit (issue 18)")
    p.add_argument("--docs", type=Path, default=paths.DOCS,
                   help="where benchmarks.md and the plot go")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("train", help="quantization-aware training of a shipped tiny model (torch)")
    p.add_argument("--config", required=True, choices=["ulx3s", "small"])
    p.add_argument("--precision", choices=["ternary", "float"], default="ternary",
                   help="float: the full-precision baseline (metrics only)")
    p.add_argument("--steps", type=int, help="override the model's step count")
    p.add_argument("-o", "--output", type=Path, help="checkpoint directory (default models/CONFIG)")
    p.add_argument("--work", type=Path, help="resumable state (default build/train/CONFIG-PRECISION)")
    p.add_argument("--restart", action="store_true", help="ignore a saved state and start over")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("report", help="measure the shipped models and write docs/models.md")
    p.add_argument("what", choices=["models"])
    p.add_argument("--positions", type=int, default=4096, help="validation positions (default 4096)")
    p.add_argument("-o", "--output", type=Path,
                   default=paths.DOCS / "models.md")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="integer vs float model: top-1 agreement and logit error")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--positions", type=int, default=256)
    p.add_argument("--validation", action="store_true",
                   help="TinyShakespeare's validation text (default: uniform random tokens)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random tokens")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv=None) -> int:
    from fpga.host.link import LinkError
    from model import CheckpointError
    from sim.prerequisites import MissingPrerequisite

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, ValueError, LinkError, MissingPrerequisite) as e:
        print(f"tritium {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
