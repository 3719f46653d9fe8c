"""Every benchmark still starts: its imports resolve against the code as it is now (a renamed
function broke benchmarks/catalogue.py unnoticed, since no test runs the benchmarks themselves)."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted(
    path
    for path in (Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py")
    if path.name != "bench_common.py"  # what they share, not a benchmark
)


@pytest.mark.parametrize("benchmark", BENCHMARKS, ids=[path.name for path in BENCHMARKS])
def test_the_benchmark_starts(benchmark):
    done = subprocess.run(
        [sys.executable, str(benchmark), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=benchmark.parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
