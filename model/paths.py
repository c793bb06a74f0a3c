"""Where things are in a checkout of the repository: the one place the root is computed."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"        # the shipped checkpoints
DATA = REPO / "data"            # TinyShakespeare
DOCS = REPO / "docs"            # benchmarks.md and the other figures' pages
BUILD = REPO / "build"          # everything generated: simulator builds, bitstreams, training runs
