"""The ``tritium`` command line: one entry point for models now, and for gateware and boards later.

Subcommands import what they need when they run, so ``tritium inspect`` does not pay for Amaranth.
"""

import argparse
import sys
import time
from pathlib import Path

from model import paths

# A random model for the demo until the trained tiny models ship: TinyShakespeare's 65 characters.
DEMO_CONFIG = dict(vocab_size=65, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                   rope_theta=10000.0, hidden_act="relu2", tie_word_embeddings=False)


def _console():
    from rich.console import Console
    return Console(highlight=False)


def _load_model(checkpoint: Path, integer: bool):
    from model import load_weights
    from model.bitnet import BitNetModel
    from model.integer import IntegerModel

    weights = load_weights(checkpoint)
    return IntegerModel(weights) if integer else BitNetModel(weights)


def cmd_inspect(args) -> int:
    from rich.table import Table

    from model import load_weights
    from model.memory import memory_budget

    weights = load_weights(args.checkpoint)
    cfg = weights.config
    table = Table(title=f"{args.checkpoint}", show_header=False)
    for field in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                  "num_attention_heads", "num_key_value_heads", "dim_per_head", "hidden_act",
                  "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                  "linear_class", "quantization_mode"):
        table.add_row(field, str(getattr(cfg, field)))
    ternary = weights.ternary_weight_count()
    embed = weights.embed_tokens.size
    head = 0 if cfg.tie_word_embeddings else weights.lm_head.size
    norms = weights.norm.size + cfg.num_hidden_layers * sum(cfg.norm_shapes().values())
    table.add_row("ternary weights", f"{ternary:,}")
    table.add_row("ternary zero fraction", f"{weights.ternary_zero_fraction():.3f}")
    table.add_row("embedding / LM head values", f"{embed:,} / {head:,}" + (" (tied)" if not head else ""))
    table.add_row("norm gains", f"{norms:,}")
    table.add_row("parameters", f"{ternary + embed + head + norms:,}")
    for part, bits in memory_budget(cfg).items():
        if bits:
            table.add_row(f"memory: {part}", f"{bits / 8 / 1024:,.1f} KiB")
    _console().print(table)
    return 0


def _encode(args, checkpoint: Path) -> tuple[list[int], object]:
    if args.ids is not None:
        return [int(t) for t in args.ids.split(",") if t.strip()], None
    from model.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(checkpoint)
    return tokenizer.encode(args.prompt).ids, tokenizer


def cmd_generate(args) -> int:
    console = _console()
    model = _load_model(args.checkpoint, args.integer)
    prompt, tokenizer = _encode(args, args.checkpoint)
    start = time.perf_counter()
    new = model.generate(prompt, args.n, temperature=args.temperature, seed=args.seed, top_k=args.top_k)
    elapsed = time.perf_counter() - start
    kind = "integer (hardware arithmetic)" if args.integer else "float (transformers semantics)"
    if tokenizer is None:
        console.print(" ".join(map(str, new)))
    else:
        console.print(f"[bold]{args.prompt}[/bold]" + tokenizer.decode(new), markup=True)
    console.print(f"[dim]{len(new)} tokens, {kind} NumPy model, {len(new) / elapsed:.1f} tok/s on the "
                  "host CPU (not a hardware figure)[/dim]")
    return 0


def cmd_random_model(args) -> int:
    from model import BitNetConfig, random_checkpoint
    from model.tokenizer import char_tokenizer_json

    config = BitNetConfig(**DEMO_CONFIG)
    random_checkpoint(args.output, config, seed=args.seed, packed=not args.master,
                      tokenizer_json=char_tokenizer_json())
    _console().print(f"wrote a random (untrained) BitNet b1.58 model to {args.output}")
    return 0


def cmd_compare(args) -> int:
    from rich.table import Table

    from model import load_weights
    from model.compare import compare_models

    weights = load_weights(args.checkpoint)
    tokens = None
    if args.validation:
        from model.train import load_splits

        tokens = load_splits()[1]
    stats = compare_models(weights, positions=args.positions, seed=args.seed, token_ids=tokens)
    table = Table(title=f"integer vs float: {args.checkpoint}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    _console().print(table)
    return 0


def cmd_train(args) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from model.train import train

    console = _console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
                  console=console) as progress:
        task = progress.add_task(f"train {args.config} ({args.precision})", total=None, loss=float("nan"))

        def advance(step, total, loss):
            progress.update(task, completed=step, total=total, loss=loss)

        metrics = train(args.config, out=args.output, precision=args.precision, steps=args.steps,
                        work=args.work, resume=not args.restart, threads=args.threads,
                        progress=advance, log=progress.console.print)
    console.print(f"final validation loss {metrics['final_val_loss']:.4f} nats/char after "
                  f"{metrics['steps']} steps ({metrics['train_seconds'] / 60:.1f} min)")
    return 0


def cmd_report(args) -> int:
    from rich.progress import Progress

    from model.report import write_report

    with Progress(console=_console()) as progress:
        task = progress.add_task("evaluate models", total=None)
        path = write_report(args.output, positions=args.positions,
                            progress=lambda: progress.advance(task))
    _console().print(f"wrote {path}")
    return 0


def _component(args):
    if args.block == "array":
        from hw.ternary_array import TernaryArray
        return TernaryArray(rows=args.rows, cols=args.cols, simd=args.simd, k_max=args.k_max,
                            act_width=args.act_width)
    if args.block == "rms-quantizer":
        from hw.rms_quantizer import RmsQuantizer
        return RmsQuantizer(width=args.width, lanes=args.lanes, max_length=args.max_length)
    if args.block == "attention":
        from hw.attention import AttentionHead
        return AttentionHead(head_dim=args.head_dim, lanes=args.lanes, max_positions=args.max_positions)
    if args.block == "sampler":
        from hw.sampler import Sampler
        return Sampler(logit_width=args.logit_width, vocab_max=args.vocab_max, k_max=args.k_max)
    if args.block == "scale-unit":
        from hw.scale_unit import ScaleUnit
        return ScaleUnit(exp_bits=args.exp_bits, int_bits=args.int_bits)
    from hw.quantizer import AbsmaxQuantizer
    return AbsmaxQuantizer(width=args.width, lanes=args.lanes, max_length=args.max_length)


def engine_from_args(args):
    """The Engine for ``--model`` with the array/vector sizes given or their defaults."""
    from hw.engine import Engine, default_parameters

    model = _load_model(args.model, integer=True)
    if args.cols != 1:
        raise SystemExit(f"--cols must be 1, not {args.cols}: the engine decodes one position at a "
                         "time (a one-column TernaryArray); batched prompt columns are not built")
    params = default_parameters(model.config)
    params.update({k: getattr(args, k) for k in params if getattr(args, k) is not None})
    flash = getattr(args, "flash_offset", None)
    try:
        return Engine(model, k_max=args.k_max, flash_offset=flash, spram=getattr(args, "spram", False),
                      **params), model
    except ValueError as e:
        raise SystemExit(f"engine: {e}") from None


def cmd_verilog(args) -> int:
    from amaranth.back import verilog

    if args.block == "engine":
        if args.spram and args.flash_offset is None:
            raise SystemExit("tritium verilog engine: --spram needs --flash-offset (SPRAM is filled "
                             "from flash at boot)")
        component, _ = engine_from_args(args)
        _console().print(f"Engine: rows {component.rows}, simd {component.simd}, lanes "
                         f"{component.lanes}, attention lanes {component.attention_lanes}, LM-head "
                         f"lanes {component.head_lanes}; {component.linear.rom_words} weight words "
                         f"of {component.linear.rom_word_bits} bits")
    else:
        component = _component(args)       # parameters are validated here, before any output
    name = args.name or {"array": "ternary_array", "quantizer": "absmax_quantizer",
                              "scale-unit": "scale_unit", "rms-quantizer": "rms_quantizer",
                              "sampler": "sampler", "attention": "attention_head",
                              "engine": "tritium_engine"}[args.block]
    text = verilog.convert(component, name=name, emit_src=False)
    args.output.write_text(text)
    if args.block == "engine" and args.flash_offset is not None:
        image = args.output.with_suffix(".weights.bin")
        image.write_bytes(component.flash_image())
        _console().print(f"{image}: the weights image to write at flash byte {args.flash_offset}")
    from amaranth import Shape
    from rich.table import Table

    table = Table(title=f"{args.output}: module {name}")
    for column in ("port", "direction", "bits"):
        table.add_column(column)
    table.add_row("clk", "input", "1")
    table.add_row("rst", "input", "1 (synchronous, active high)")
    for path, member in component.signature.members.flatten():
        if member.is_port:
            table.add_row("__".join(map(str, path)), "input" if member.flow.name == "In" else "output",
                          str(Shape.cast(member.shape).width))
    _console().print(table)
    return 0


def cmd_sim(args) -> int:
    from rich.table import Table

    from fpga.perf.cycle_model import SIZES
    from fpga.simulate import build_engine, engine_params, per_token_counters, run_engine
    from hw.engine import Phase

    console = _console()
    prompt, tokenizer = _encode(args, args.model)
    if not prompt:
        raise SystemExit("tritium sim: the prompt is empty")
    if args.cols != 1:
        raise SystemExit(f"--cols must be 1, not {args.cols}: the engine decodes one position at a "
                         "time (a one-column TernaryArray)")
    params = engine_params(args.model, args.k_max, **{k: getattr(args, k) for k in SIZES})
    run = dict(prompt=prompt, count=args.n, temperature=args.temperature, top_k=args.top_k,
               seed=args.seed)
    with console.status("") as status:
        def say(text):
            status.update(f"[dim]{text}[/dim]")
        built = build_engine(params, say)
    console.print(f"[dim]engine {', '.join(f'{k} {params[k]}' for k in SIZES)}: Verilator model "
                  f"ready in {built[2]:.0f} s[/dim]")
    if tokenizer is not None:
        console.print(f"[bold]{args.prompt}[/bold]", end="")
    [result] = run_engine(params, [run], echo=tokenizer is not None, built=built)
    if tokenizer is None:
        console.print(" ".join(map(str, result["tokens"])))
    if args.check:
        model = _load_model(args.model, integer=True)
        want = model.generate(prompt, args.n, temperature=args.temperature, seed=args.seed,
                              top_k=args.top_k)
        same = want == result["tokens"]
        console.print(f"integer model: {'the same tokens' if same else 'DIFFERENT tokens: ' + str(want)}")
        if not same:
            return 1
    table = Table(title="engine clock cycles per token (Verilator)")
    columns = {f"prompt: layers ({len(prompt)} tokens)": {k: v / len(prompt) for k, v in
                                                          result["prompt"].items()}}
    if args.n >= 2:
        columns[f"decode: layers + LM head (positions {len(prompt)}–{len(prompt) + args.n - 2})"] = \
            per_token_counters(result)
    table.add_column("")
    for name in columns:
        table.add_column(name, justify="right")
    for key in ("cycles", *(p.name.lower() for p in Phase)):
        table.add_row("all" if key == "cycles" else key, *(f"{c[key]:,.0f}" for c in columns.values()))
    console.print(table)
    total = result["prompt"]["cycles"] + result["decode"]["cycles"]
    console.print(f"[dim]{total:,} cycles simulated in {result['seconds']:.1f} s: "
                  f"{total / result['seconds']:,.0f} cycles/s.[/dim]")
    if result["error"] or result["full"]:
        console.print("[red]the engine flagged " + ("an error" if result["error"] else
                      "a full context") + "[/red]")
        return 1
    return 0


def _board(name):
    from fpga.boards import BOARDS

    if name not in BOARDS:
        raise ValueError(f"no board {name!r}; boards: {', '.join(BOARDS)}")
    return BOARDS[name]


def cmd_build(args) -> int:
    from fpga.flow.build import BuildError, build

    board = _board(args.board)
    console = _console()
    try:
        with console.status("") as status:
            report = build(board, root=args.root, model_dir=args.model,
                           status=lambda text: status.update(f"[dim]{board.name}: {text}[/dim]"))
    except BuildError as e:
        console.print(f"[red]tritium build: {e}[/red]")
        return 1
    _print_build_report(console, report)
    return 0


def _print_build_report(console, report):
    from rich.table import Table

    table = Table(title=f"{report['board']}: {report['model']}, built in {report['seconds']:.0f} s")
    table.add_column("resource")
    table.add_column("used", justify="right")
    table.add_column("available", justify="right")
    for name, (used, available) in report["resources"].items():
        table.add_row(name, f"{used:,}", f"{available:,}")
    console.print(table)
    console.print(f"fmax {report['fmax_mhz']:.1f} MHz for a {report['target_mhz']} MHz clock: "
                  f"timing {'met' if report['timing_met'] else 'NOT met'}; bitstream {report['bitstream']}")


def cmd_explore(args) -> int:
    from rich.progress import Progress

    from fpga.perf import explore
    from model import load_weights

    console = _console()
    if args.refit:
        from fpga.perf.resource_fit import refit

        with console.status("") as status:
            model = refit(args.synthesize, args.root / "explore-fit",
                          lambda text: status.update(f"[dim]{text}[/dim]"))
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
    sizes = {name: getattr(args, name) for name in explore.SIZES}
    title = f"{board.name}: {args.model or board.model}"
    current = explore.board_point(board, cfg)
    if all(sizes.values()):                     # one point: its prediction, or why it is refused
        explore.candidates(cfg, **sizes)        # a size the engine does not take: ValueError
        point = explore.evaluate(board, cfg, sizes, args.buffers or "block")
        console.print(explore.point_table(board, point, f"{title}: {point.label()} (predicted)"))
        if not point.fits:
            console.print(f"[red]refused: {point.label()} {point.refusal()}[/red]")
            return 1
        console.print(f"{point.tokens_per_second:,.0f} tok/s at {board.clock_mhz} MHz "
                      f"(prefill {point.prefill_tokens_per_second:,.0f} tok/s)")
        return 0
    count = len(explore.candidates(cfg, **{k: v for k, v in sizes.items() if v}))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{board.name}: {count * 2} points", total=count * 2)
        points = explore.sweep(board, cfg, lambda: progress.advance(task),
                               **{k: v for k, v in sizes.items() if v})
    front = explore.pareto(points)
    console.print(explore.table(board, front, current, f"{title}: the Pareto front "
                                f"(tok/s against LUTs) at {board.clock_mhz} MHz"))
    console.print(explore.summary(board, points, current))
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    explore.plot(points, front, current, args.plot, title)
    console.print(f"plot: {args.plot}")
    return 0


def cmd_flash(args) -> int:
    from fpga.flow.flash import flash

    board = _board(args.board)
    flash(board, bitstream=args.bitstream, to_flash=args.flash, dry_run=args.dry_run, root=args.root)
    return 0


def cmd_chat(args) -> int:
    import contextlib

    from fpga.host.chat import Conversation, serial_link
    from model.tokenizer import load_tokenizer

    board = _board(args.board)
    model_dir = args.model or paths.REPO / board.model
    tokenizer = load_tokenizer(model_dir)
    console = _console()
    if not args.sim and not args.port:
        raise ValueError("give --port (the board's serial port) or --sim")
    with contextlib.ExitStack() as stack:
        if args.sim:
            from sim.virtual_board import open_board, soc_params

            params = soc_params(model_dir, board.engine_parameters(), board.clock_mhz * 1e6)
            with console.status("") as status:
                link = stack.enter_context(open_board(
                    params, timeout=args.timeout,
                    status=lambda text: status.update(f"[dim]{text}[/dim]")))
        else:
            link = stack.enter_context(serial_link(args.port, args.baud or board.baud, args.timeout))
        status = link.status()
        if status["vocab"] != tokenizer.get_vocab_size():
            raise ValueError(f"the board's model has {status['vocab']} tokens, the tokenizer of "
                             f"{model_dir} {tokenizer.get_vocab_size()}: a different model")
        link.reset()
        conversation = Conversation(link, tokenizer, status["context"])
        prompts = [args.prompt] if args.prompt is not None else None
        if args.check and prompts is None:
            raise ValueError("--check needs --prompt (one turn from an empty context)")
        while True:
            text = prompts.pop(0) if prompts else (None if prompts is not None else _ask(console))
            if text is None:
                break
            started = time.perf_counter()
            console.print(f"[bold]{text}[/bold]", end="")
            new = conversation.turn(text, args.n, echo=lambda piece: console.print(piece, end=""),
                                    temperature=args.temperature, top_k=args.top_k, seed=args.seed)
            elapsed = time.perf_counter() - started
            cycles, tokens = conversation.cycles[-1]
            console.print()
            clock = board.clock_mhz * 1e6
            console.print(f"[dim]{len(new)} tokens in {elapsed:.2f} s here ({len(new) / elapsed:.1f} "
                          f"tok/s{' simulated' if args.sim else ''}); {cycles / max(tokens, 1):,.0f} "
                          f"engine cycles a token = {clock * tokens / max(cycles, 1):,.0f} tok/s at "
                          f"{board.clock_mhz} MHz[/dim]")
            if args.ids:
                console.print(" ".join(map(str, new)))
            if args.check:
                expected = _load_model(model_dir, True).generate(
                    tokenizer.encode(text).ids, args.n, temperature=args.temperature,
                    seed=args.seed, top_k=args.top_k)
                if new != expected:
                    console.print(f"[red]differs from the integer model: {new} != {expected}[/red]")
                    return 1
                console.print("[green]the same tokens as the integer model (model/integer.py)[/green]")
    return 0


def _ask(console):
    try:
        return console.input("[bold]> [/bold]") or None
    except EOFError:
        return None


def cmd_bench(args) -> int:
    from rich.table import Table

    from fpga.bench.array import bench_array

    if args.what == "boards":
        from fpga.bench.boards import bench_boards

        with _console().status("") as status:
            rows = bench_boards(args.boards, root=args.root, rebuild=args.rebuild, docs=args.docs,
                                status=lambda text: status.update(f"[dim]{text}[/dim]"))
        table = Table(title="boards (tok/s = clock / simulated cycles per token)")
        for column in ("board", "fits", "fmax MHz", "clock MHz", "cycles/token", "tok/s"):
            table.add_column(column, justify="right")
        for r in rows:
            fmax = r["report"].get("fmax_mhz")
            table.add_row(r["board"], str(r["report"].get("fits", False)), f"{fmax:.1f}" if fmax else "—",
                          str(r["clock_mhz"]), f"{r['cycles_per_token']:,.0f}", f"{r['tok_s_clock']:,.0f}")
        _console().print(table)
        _console().print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "explore":
        from fpga.bench.explore import bench_explore, label

        with _console().status("") as status:
            result = bench_explore(args.docs, args.root, remeasure=args.remeasure,
                                   rebuild=args.rebuild,
                                   status=lambda text: status.update(f"[dim]{text}[/dim]"))
        table = Table(title="explorer: predicted against measured")
        for column in ("what", "sizes", "measured", "predicted", "error"):
            table.add_column(column, justify="right")
        for c in result["cycles"]:
            table.add_row(f"{c['model']} {c['kind']} cycles", label(c["params"]),
                          f"{c['measured']:,.0f}", f"{c['predicted']:,.0f}", f"{c['error']:+.2%}")
        for b in result["builds"]:
            table.add_row(f"{b['name']} LUTs", label(b["params"]), f"{b['measured']['luts']:,}",
                          f"{b['predicted']['luts']:,}", f"{b['error']['luts']:+.1%}")
        _console().print(table)
        _console().print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0
    if args.what == "engine":
        from fpga.bench.engine import bench_engine

        with _console().status("") as status:
            results = bench_engine(args.docs, lambda text: status.update(f"[dim]{text}[/dim]"))
        table = Table(title="Engine decode, clock cycles per token (Verilator)")
        for column in ("model", "bound", *(f"p {label}" for label in results[0]["at"]), "short ctx",
                       "sim cycles/s"):
            table.add_column(column, justify="right")
        for r in results:
            table.add_row(r["model"], f"{r['bound']:,.0f}", *(f"{c:,}" for _, c in r["at"].values()),
                          f"{r['short']['cycles']:,.0f}", f"{r['sim_speed']:,.0f}")
        _console().print(table)
        _console().print(f"wrote {args.docs / 'benchmarks.md'}")
        return 1 if any(r["error"] for r in results) else 0
    if args.what == "blocks":
        from fpga.bench.blocks import bench_blocks

        rows = bench_blocks(docs=args.docs)
        table = Table(title="engine blocks (ECP5: ulx3s sizes, UP5K: small sizes)")
        for column in ("block", "part", "LUT4", "FF", "DSP", "BRAM", "fmax MHz"):
            table.add_column(column)
        for r in rows:
            table.add_row(r["block"], r["family"], *(("failed", "", "", "", "") if "error" in r else (
                str(r["luts"]), str(r["ffs"]), str(r["dsp"]), str(r["ram"]), f"{r['fmax']:.1f}")))
        _console().print(table)
        _console().print(f"wrote {args.docs / 'benchmarks.md'}")
        return 0

    util, synth = bench_array(quick=args.quick, docs=args.docs)
    table = Table(title="TernaryArray utilization (simulation)")
    for column in ("case", "array", "N×K×T", "cycles", "utilization"):
        table.add_column(column)
    for u in util:
        table.add_row(u["kind"], "×".join(map(str, u["array"])), "×".join(map(str, u["shape"])),
                      str(u["cycles"]), f"{100 * u['utilization']:.1f}%")
    _console().print(table)
    table = Table(title="TernaryArray synthesis")
    for column in ("part", "array", "LUT4/lane", "FF/lane", "fmax MHz"):
        table.add_column(column)
    for s in synth:
        table.add_row(s["family"], "×".join(map(str, s["array"])), f"{s['luts_per_lane']:.1f}",
                      f"{s['ffs_per_lane']:.1f}", f"{s['fmax']:.1f}")
    _console().print(table)
    _console().print(f"wrote {args.docs / 'benchmarks.md'} and {args.docs / 'bench-array.png'}")
    return 0


def add_engine_arguments(p):
    p.add_argument("--model", type=Path, default=Path("models/small"), help="checkpoint directory "
                   "(default models/small)")
    p.add_argument("--rows", type=int, help="TernaryArray rows (default: by model size)")
    p.add_argument("--cols", type=int, default=1, help="TernaryArray columns (1: decode)")
    p.add_argument("--simd", type=int, help="TernaryArray K-lanes (default: by model size)")
    p.add_argument("--lanes", type=int, help="vector-unit lanes (default: by model size)")
    p.add_argument("--attention-lanes", type=int, help="attention and KV-cache lanes (default: by "
                   "model size)")
    p.add_argument("--head-lanes", type=int, help="LM-head lanes (default: by model size)")
    p.add_argument("--k-max", type=int, default=8, help="largest top-k of the sampler (default 8)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tritium", description=__doc__.splitlines()[0])
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
    p.add_argument("--board", required=True, help="ulx3s-85f, ulx3s-45f, ulx3s-25f, icebreaker, "
                   "tang-nano-9k, tang-primer-20k")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the board's model)")
    p.add_argument("--root", type=Path, default=Path("build"), help="builds go to ROOT/BOARD")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("flash", help="program a board with openFPGALoader")
    p.add_argument("--board", required=True)
    p.add_argument("--bitstream", type=Path, help="default: the last tritium build's")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--flash", action="store_true", help="write the SPI flash (kept at power-off)")
    target.add_argument("--sram", action="store_true", help="load the FPGA only (the default)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--root", type=Path, default=Path("build"))
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("chat", help="talk to a board (or its simulation, --sim) over the byte protocol")
    p.add_argument("--board", default="ulx3s-85f", help="the board (its model and clock; default "
                   "ulx3s-85f)")
    p.add_argument("--port", help="the board's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--baud", type=int, help="default: the board's")
    p.add_argument("--sim", action="store_true", help="the SoC in Verilator behind a pseudo-terminal")
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
    p.add_argument("--board", help="the board (its part, clock and memory options)")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the board's model)")
    for name in ("rows", "simd", "lanes", "attention_lanes", "head_lanes"):    # cycle_model.SIZES
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int,
                       help=f"pin {name} (all five: one point)")
    p.add_argument("--buffers", choices=["block", "lut"], help="one point: the shallow buffers in "
                   "block RAM or LUT RAM (default block)")
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
    p.add_argument("what", choices=["array", "blocks", "engine", "boards", "explore"])
    p.add_argument("--boards", nargs="*", help="boards: only these (default all)")
    p.add_argument("--rebuild", action="store_true", help="boards, explore: build even where a "
                   "report exists")
    p.add_argument("--remeasure", action="store_true", help="explore: simulate again rather than "
                   "use fpga/perf/data/validation.json's cycle counts")
    p.add_argument("--root", type=Path, default=Path("build"), help="boards: the builds' root")
    p.add_argument("--quick", action="store_true", help="a smaller synthesis sweep")
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
    from model import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CheckpointError, ValueError) as e:
        print(f"tritium {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
