"""A compiler cache for the runtime of every Verilator model: verilated.mk runs each C++ compile as
``$(OBJCACHE) $(CXX) ... -c -o OBJECT SOURCE``, and :mod:`sim.harness` sets ``OBJCACHE`` to this
script. Verilator's own sources (``verilated.cpp``, ``verilated_vpi.cpp``, ...) compile the same in
every build, about 20 s of CPU each time; their objects are kept under ``CACHE`` by the whole
command line, with the size and time of each file they were compiled from (``-MMD``'s list), and
copied into the next build that compiles them the same way from the same files. What includes a
file of the build directory (a design's own files, and cocotb's ``verilator.cpp``, which includes
the design's model header) always compiles.

Usage (by make, through the wrapper :func:`sim.harness` writes): ``python sim/objcache.py CACHE
COMPILER ARGUMENTS...``
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def dependencies(depend_file: Path) -> list[str]:
    """The files ``-MMD`` says an object was compiled from (its make rule's prerequisites)."""
    rule = depend_file.read_text().replace("\\\n", " ")
    return rule.split(":", 1)[1].split() if ":" in rule else []


def stats(paths) -> list:
    """[path, size, modification time] of each of ``paths``."""
    return [[path, state.st_size, state.st_mtime_ns] for path in paths for state in [os.stat(path)]]


def outside_the_build(path: str) -> bool:
    """Whether ``path`` is a file of no build (absolute, not under the build directory, make's)."""
    return Path(path).is_absolute() and Path.cwd() not in Path(path).parents


def cached_compile(cache: Path, command: list[str]) -> int:
    """Run ``command`` (a compiler's), or copy its object (and ``-MMD``'s dependency file) from
    ``cache`` where the same command compiled the same files before. Only an object compiled from
    files outside the build directory alone is kept: cocotb's ``verilator.cpp`` includes the
    design's own model header, so its object is the design's."""
    if "-c" not in command or "-o" not in command or "-MMD" not in command:
        return subprocess.call(command)
    output = Path(command[command.index("-o") + 1])
    if not outside_the_build(command[-1]):
        return subprocess.call(command)
    key = hashlib.sha256(repr(command).encode()).hexdigest()[:24]
    depend = output.with_suffix(".d")
    stored_object, stored_depend, manifest = (cache / f"{key}{suffix}" for suffix in (".o", ".d", ".json"))
    try:
        kept = json.loads(manifest.read_text())
        if stats(path for path, _, _ in kept) == kept:
            shutil.copyfile(stored_object, output)
            shutil.copyfile(stored_depend, depend)
            return 0
    except (OSError, ValueError):
        pass                            # not kept yet, or a file it was compiled from changed
    status = subprocess.call(command)
    if status != 0 or not depend.is_file():
        return status
    paths = dependencies(depend)
    if not paths or not all(outside_the_build(path) for path in paths):
        return status
    cache.mkdir(parents=True, exist_ok=True)
    # the manifest last: it marks the entry complete
    for stored, content in ((stored_object, output.read_bytes()), (stored_depend, depend.read_bytes()),
                            (manifest, json.dumps(stats(paths)).encode())):
        with tempfile.NamedTemporaryFile(dir=cache, delete=False) as temporary:
            temporary.write(content)
        os.chmod(temporary.name, 0o644)
        os.replace(temporary.name, stored)
    return status


if __name__ == "__main__":
    sys.exit(cached_compile(Path(sys.argv[1]), sys.argv[2:]))
