"""Simulation metadata extraction: metadata only, so a huge series reads as fast as a small one.

    .venv/bin/python benchmarks/simulations.py [--quick]

A WarpX-like run with ~1 MB of arrays beside the same run with 1,000× larger arrays (~1 GB on
disk; written once, kept under data/bench-simulations/, an ignored folder), each extracted 15
times in turns (median; target: large within 1.5× of small); then a folder of 200 small runs (--quick: 50)
extracted one after another: runs per second. Nothing is stored in MongoDB. The last line is one
JSON object.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")

import django  # noqa: E402

django.setup()

from simulations.extract import extract_run  # noqa: E402
from simulations.services import extract_runs  # noqa: E402
from tests.simulations.runs import warpx_run  # noqa: E402

CACHE = ROOT / "data" / "bench-simulations"
SMALL = {"grid": (128, 64), "particles": 2_000}  # ~0.9 MB over 3 iterations
LARGE = {"grid": (4096, 2048), "particles": 2_000_000}  # 1,000× the arrays: ~0.9 GB


def cached_run(name: str, **size) -> Path:
    folder = CACHE / name
    done = folder / ".complete"
    if not done.exists():
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        warpx_run(folder, **size)
        done.write_text("written by benchmarks/simulations.py\n")
    return folder


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def interleaved_medians(small: Path, large: Path, repeats: int = 15) -> tuple[float, float]:
    """Median seconds per extraction of each, taken in turns: a busy machine slows both alike."""
    times: dict[Path, list[float]] = {small: [], large: []}
    for _ in range(repeats):
        for folder in (small, large):
            started = time.perf_counter()
            extract_run(folder)
            times[folder].append(time.perf_counter() - started)
    return statistics.median(times[small]), statistics.median(times[large])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    small, large = cached_run("small", **SMALL), cached_run("large", **LARGE)
    extract_run(small), extract_run(large)  # first opens: imports, file system caches
    small_s, large_s = interleaved_medians(small, large)
    print(f"small run ({disk_bytes(small) / 1e6:.1f} MB): {small_s * 1e3:.1f} ms per extraction")
    ratio = large_s / small_s
    print(f"large run ({disk_bytes(large) / 1e9:.2f} GB): {large_s * 1e3:.1f} ms per extraction, {ratio:.2f}× small")

    count = 50 if args.quick else 200
    folder = [cached_run(f"many/run-{n:03d}", **SMALL) for n in range(count)]
    started = time.perf_counter()
    results = extract_runs(folder, store_runs=False, settle_seconds=0)
    elapsed = time.perf_counter() - started
    assert not [r.error for r in results if r.error]
    print(f"{count} small runs: {count / elapsed:.1f} runs/s")
    print(
        json.dumps(
            {
                "small_bytes": disk_bytes(small),
                "large_bytes": disk_bytes(large),
                "small_ms": round(small_s * 1e3, 2),
                "large_ms": round(large_s * 1e3, 2),
                "large_vs_small": round(large_s / small_s, 3),
                "target_large_vs_small": 1.5,
                "runs": count,
                "runs_per_s": round(count / elapsed, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
