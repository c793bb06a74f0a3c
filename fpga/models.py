"""The model commands on the console (``tritium inspect``, ``generate``, ``random-model``,
``compare``, ``train``, ``report models``): the numbers come from model/, the tables and progress
are here.
"""

import time
from pathlib import Path

# A random model for the demo until the trained tiny models ship: TinyShakespeare's 65 characters.
DEMO_CONFIG = dict(vocab_size=65, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                   rope_theta=10000.0, hidden_act="relu2", tie_word_embeddings=False)


def load_model(checkpoint: Path, integer: bool):
    """The integer (hardware arithmetic) or float model of a checkpoint directory."""
    from model import load_weights
    from model.bitnet import BitNetModel
    from model.integer import IntegerModel

    weights = load_weights(checkpoint)
    return IntegerModel(weights) if integer else BitNetModel(weights)


def inspect(console, checkpoint: Path):
    from rich.table import Table

    from model import load_weights
    from model.memory import checkpoint_summary

    table = Table(title=f"{checkpoint}", show_header=False)
    for field, value in checkpoint_summary(load_weights(checkpoint)).items():
        table.add_row(field, value)
    console.print(table)


def generate(console, checkpoint: Path, prompt: list[int], *, text=None, integer: bool, count: int,
             **sampling):
    """``count`` tokens after ``prompt`` from the NumPy model, as text after ``text`` (the prompt's)
    when given, else as ids; and the host's tok/s."""
    model = load_model(checkpoint, integer)
    start = time.perf_counter()
    new = model.generate(prompt, count, **sampling)
    elapsed = time.perf_counter() - start
    kind = "integer (hardware arithmetic)" if integer else "float (transformers semantics)"
    if text is None:
        console.print(" ".join(map(str, new)))
    else:
        from model.tokenizer import load_tokenizer

        console.print(f"[bold]{text}[/bold]" + load_tokenizer(checkpoint).decode(new), markup=True)
    console.print(f"[dim]{len(new)} tokens, {kind} NumPy model, {len(new) / elapsed:.1f} tok/s on the "
                  "host CPU (not a hardware figure)[/dim]")


def random_model(console, output: Path, *, seed: int, master: bool):
    from model import BitNetConfig, random_checkpoint
    from model.tokenizer import char_tokenizer_json

    random_checkpoint(output, BitNetConfig(**DEMO_CONFIG), seed=seed, packed=not master,
                      tokenizer_json=char_tokenizer_json())
    console.print(f"wrote a random (untrained) BitNet b1.58 model to {output}")


def compare(console, checkpoint: Path, *, positions: int, seed: int, validation: bool):
    from rich.table import Table

    from model import load_weights
    from model.compare import compare_models

    tokens = None
    if validation:
        from model.train import load_splits

        tokens = load_splits()[1]
    stats = compare_models(load_weights(checkpoint), positions=positions, seed=seed, token_ids=tokens)
    table = Table(title=f"integer vs float: {checkpoint}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


def train(console, config: str, *, precision: str, **options):
    """``model.train.train`` with a progress bar; ``options`` are its keyword arguments."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from model.train import train as run

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
                  console=console) as progress:
        task = progress.add_task(f"train {config} ({precision})", total=None, loss=float("nan"))

        def advance(step, total, loss):
            progress.update(task, completed=step, total=total, loss=loss)

        metrics = run(config, precision=precision, progress=advance, log=progress.console.print,
                      **options)
    console.print(f"final validation loss {metrics['final_val_loss']:.4f} nats/char after "
                  f"{metrics['steps']} steps ({metrics['train_seconds'] / 60:.1f} min)")


def report(console, output: Path, *, positions: int):
    from rich.progress import Progress

    from model.report import write_report

    with Progress(console=console) as progress:
        task = progress.add_task("evaluate models", total=None)
        path = write_report(output, positions=positions, progress=lambda: progress.advance(task))
    console.print(f"wrote {path}")
