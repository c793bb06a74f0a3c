"""A compiler cache for the runtime of every Verilator model: verilated.mk runs each C++ compile as
``$(OBJCACHE) $(CXX) ... -c -o OBJECT SOURCE``, and :mod:`sim.harness` sets ``OBJCACHE`` to this
script. Verilator's and cocotb's own sources (``verilated.cpp``, ``verilated_vpi.cpp``, cocotb's
``verilator.cpp``: an absolute path outside the build directory) compile the same in every build,
about 20 s of CPU each time; their objects are kept under ``CACHE`` by the whole command line and
the source's size and time, and copied into the next build that compiles them the same way. A
design's own files (relative paths in its build directory) always compile.

Usage (by make, through the wrapper :func:`sim.harness` writes): ``python sim/objcache.py CACHE
COMPILER ARGUMENTS...``
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def cached_compile(cache: Path, command: list[str]) -> int:
    """Run ``command`` (a compiler's), or copy its object (and ``-MMD``'s dependency file) from
    ``cache`` where the same command compiled the same runtime source before."""
    if "-c" not in command or "-o" not in command:
        return subprocess.call(command)
    output = Path(command[command.index("-o") + 1])
    source = Path(command[-1])
    if not source.is_absolute() or Path.cwd() in source.parents or not source.is_file():
        return subprocess.call(command)
    state = source.stat()
    key = hashlib.sha256(repr([command, state.st_size, state.st_mtime_ns]).encode()).hexdigest()[:24]
    kept = [(cache / f"{key}.o", output), (cache / f"{key}.d", output.with_suffix(".d"))]
    if kept[0][0].is_file():
        for stored, target in kept:
            if stored.is_file():
                shutil.copyfile(stored, target)
        return 0
    status = subprocess.call(command)
    if status == 0:
        cache.mkdir(parents=True, exist_ok=True)
        for stored, target in reversed(kept):     # the object last: it marks the entry complete
            if target.is_file():
                with tempfile.NamedTemporaryFile(dir=cache, delete=False) as temporary:
                    shutil.copyfileobj(target.open("rb"), temporary)
                os.chmod(temporary.name, 0o644)
                os.replace(temporary.name, stored)
    return status


if __name__ == "__main__":
    sys.exit(cached_compile(Path(sys.argv[1]), sys.argv[2:]))
