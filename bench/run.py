"""`make bench`: run every benchmark (or those named) and print their tables.

    make bench                      # all
    make bench ARGS="provisioning --tenants 1000"
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["provisioning", "definitions", "data_api", "jobs"]


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in BENCHMARKS] or BENCHMARKS
    extra = [a for a in argv if a not in BENCHMARKS]
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / f"{name}.py"), *extra])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
