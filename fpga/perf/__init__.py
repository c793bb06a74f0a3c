"""The performance model: cycles per token from the blocks' timings (``cycle_model``), the SoC's
memories (``memory_map``), resources fitted to synthesis runs (``resource_model``,
``resource_fit``), the design-space explorer (``explore``) and the 2B4T projection
(``projection``); fitted constants and measurements in ``data/``."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
