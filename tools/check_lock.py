"""Check that the running environment is exactly the lock: every installed distribution (but pip and
the project itself) pinned in constraints.txt at the installed version, and every pin installed.
Catches a dependency added to pyproject.toml without refreshing the lock (`pip install -c` would
take it unpinned) and a lock left with pins nothing needs any more. Exit 1 with the differences.

    .venv/bin/python tools/check_lock.py [constraints.txt]
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line and not line.startswith("-"):
            name, sep, version = line.partition("==")
            if not sep:
                sys.exit(f"{path}: not an exact pin: {line!r}")
            out[canonical(name)] = version.strip()
    return out


def main() -> int:
    lock = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "constraints.txt"
    project = canonical(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"])
    locked = pins(lock)
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed = {n: v for n, v in installed.items() if n not in ("pip", project)}
    problems = [f"{n}=={v} installed but not in {lock.name}" for n, v in installed.items() if n not in locked]
    problems += [f"{n}=={v} installed, {lock.name} pins {locked[n]}"
                 for n, v in installed.items() if n in locked and locked[n] != v]
    problems += [f"{n}=={v} in {lock.name} but not installed" for n, v in locked.items() if n not in installed]
    if problems:
        print(f"{lock}: the environment and the lock differ (refresh it with tools/lock.sh):", file=sys.stderr)
        for line in sorted(problems):
            print(f"  {line}", file=sys.stderr)
        return 1
    print(f"{lock.name}: all {len(locked)} pins installed, nothing else")
    return 0


if __name__ == "__main__":
    sys.exit(main())
