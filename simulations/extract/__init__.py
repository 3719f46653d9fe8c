"""One extractor per code: a run folder → one document of its metadata (never its arrays).

`extract_run(path)` decides the code from what the folder holds — a SMILEI namelist (`smilei.py`),
a WarpX used-inputs file or an openPMD series whose `software` is WarpX or PIConGPU — and returns
the document `simulations.store.save_run` keeps, or raises `ExtractError` naming the file and the
problem (nothing is stored then).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from . import openpmd, smilei, warpx

EXTRACTOR_VERSION = "1.0"
TEXT_INPUTS = ("warpx_used_inputs", "smilei.py", "scalars.txt", "*.param", "*.cfg", "inputs*")
SMALL_TEXT_BYTES = 2_000_000  # checksums of the small text inputs, never of the data
MAX_FILES_LISTED = 10_000


class ExtractError(ValueError):
    """A run that cannot be read: the message names the file (or folder) and the problem."""


def run_id(path: Path) -> str:
    """The same folder is the same run: extracting it again updates its document."""
    return "sim:" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:20]


def extract_run(path: Path, settle_seconds: float = 0) -> dict:
    path = Path(path).resolve()
    if not path.is_dir():
        raise ExtractError(f"{path}: not a folder")
    listed = files(path)
    if settle_seconds and listed:
        newest = max(listed, key=lambda f: f["mtime"])
        age = time.time() - newest["mtime"]
        if age < settle_seconds:
            raise ExtractError(f"{path / newest['path']}: still being written (changed {age:.0f} s ago)")
    try:
        described = read(path)
    except (openpmd.SeriesError, smilei.NamelistError, warpx.InputsError) as exc:
        raise ExtractError(str(exc)) from None
    except OSError as exc:
        raise ExtractError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    return {
        "_id": run_id(path),
        "path": str(path),
        "name": path.name,
        "extractor": {"name": f"labbook.simulations.{described['code']}", "version": EXTRACTOR_VERSION},
        "files": listed,
        **described,
    }


def read(path: Path) -> dict:
    if (path / smilei.NAMELIST).is_file():
        described = smilei.read_run(path)
        return {"code": "smilei", "software_version": software_version(described), **described}
    series = [openpmd.read_series(pattern) for pattern in openpmd.find_series(path)]
    software = {s["software"] for s in series}
    inputs = path / warpx.USED_INPUTS
    if inputs.is_file() or "WarpX" in software:
        parameters = warpx.read_inputs(inputs) if inputs.is_file() else {}
        return code_document("warpx", "WarpX", series, parameters, warpx.summary(parameters))
    if "PIConGPU" in software:
        return code_document("picongpu", "PIConGPU", series, {}, {})
    if series:
        codes = ", ".join(sorted(software)) or "an unnamed code"
        raise ExtractError(f"{path}: an openPMD series of {codes}, not WarpX, PIConGPU or SMILEI")
    raise ExtractError(f"{path}: unknown code (no openPMD series, no WarpX inputs, no SMILEI namelist)")


def code_document(code: str, software: str, series: list[dict], parameters: dict, summary: dict) -> dict:
    versions = sorted({s["software_version"] for s in series if s["software"] == software})
    return {
        "code": code,
        "software": software,
        "software_version": versions[-1] if versions else "",
        "series": series,
        "parameters": parameters,
        "summary": summary,
    }


def software_version(described: dict) -> str:
    versions = [o["attributes"].get("softwareVersion") for o in described["outputs"]]
    return next((v for v in versions if v), "")


def files(run: Path) -> list[dict]:
    """The run's files with sizes (ADIOS2 folders counted as one), checksums of its small text inputs."""
    text_inputs = {p for pattern in TEXT_INPUTS for p in run.glob(pattern) if p.is_file()}
    listed = []
    for path in sorted(run.rglob("*")):
        if len(listed) >= MAX_FILES_LISTED:
            break
        if not path.is_file() or any(p.suffix in openpmd.SERIES_SUFFIXES and p.is_dir() for p in path.parents):
            if path.is_dir() and path.suffix in openpmd.SERIES_SUFFIXES:
                inside = [f.stat() for f in path.rglob("*") if f.is_file()]
                listed.append(
                    {
                        "path": str(path.relative_to(run)),
                        "size": sum(s.st_size for s in inside),
                        "mtime": max((s.st_mtime for s in inside), default=path.stat().st_mtime),
                    }
                )
            continue
        stat = path.stat()
        entry = {"path": str(path.relative_to(run)), "size": stat.st_size, "mtime": stat.st_mtime}
        if path in text_inputs and stat.st_size <= SMALL_TEXT_BYTES:
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        listed.append(entry)
    return listed
