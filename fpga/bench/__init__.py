"""``tritium bench``: one module per benchmark, each measuring with a command and writing its own
section of docs/benchmarks.md (between markers, so the others keep theirs). Here: what every
benchmark stamps on its figures (date, machine, CPU) and the section writer."""

import datetime
import os
import platform
import re
from pathlib import Path

from model import paths


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def stamp() -> dict:
    """When and where a measurement was made: ``date`` (ISO) and ``machine``."""
    return {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {cpu_name()} × {os.cpu_count()}, "
                       f"Python {platform.python_version()}"}


def provenance(command: str) -> str:
    """The line that opens a benchmark's section: the command, the date and the machine."""
    where = stamp()
    return f"Produced by `{command}` on {where['date']} ({where['machine']})"


def write_section(name: str, text: str, path: Path = paths.DOCS / "benchmarks.md"):
    """Replace (or append) the section between ``<!-- bench:name -->`` markers."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{begin}\n{text}\n{end}"
    old = path.read_text() if path.exists() else (
        "# Benchmarks\n\nEvery figure here is written by the `tritium bench` command named in its "
        "section; tests check correctness, not speed.\n")
    if begin in old:
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
