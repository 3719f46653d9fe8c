"""Extracting runs and storing them, for the command and for the folder watcher alike."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import store
from .extract import ExtractError, extract_run
from .search import shots_in_path


@dataclass
class Extracted:
    path: str
    run: dict | None = None
    error: str = ""
    shot_keys: list[str] = field(default_factory=list)


def extract_runs(
    paths: Iterable[str | Path],
    *,
    experiment: str | None = None,
    shot_keys: list[str] | None = None,
    sheet: str | None = None,
    store_runs: bool = True,
    settle_seconds: float = 60,
    progress: Callable[[], None] = lambda: None,
) -> list[Extracted]:
    """Each run on its own: one that cannot be read is reported, the others are still extracted."""
    results = []
    for path in paths:
        try:
            run = extract_run(Path(path), settle_seconds=settle_seconds)
        except ExtractError as exc:
            results.append(Extracted(str(path), error=str(exc)))
        else:
            matched = shots_in_path(run["path"])
            keys = sorted(set(shot_keys or []) | set(matched))
            if store_runs:
                run = store.save_run(run, experiment=experiment, shot_keys=shot_keys, matched=matched, sheet=sheet)
            results.append(Extracted(str(path), run=run, shot_keys=keys))
        progress()
    return results
