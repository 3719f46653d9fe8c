"""The pure dataset builder: a sheet entry, the relay's record of its shot and the shot's ingested
events → the bodies SciCat takes (a raw dataset for API v4 or v3, its PATCH, its OrigDatablocks).

No database and no HTTP here, so every body is checked in tests against SciCat's OpenAPI schemas
and scitacean's models. The `files` the DAQ wrote for a shot are read from an event's `values.files`
or `metadata.files`: a list of `{"path", "size", "mtime", "checksum"?}` (mtime: ISO 8601 or epoch
s/ms/µs/ns; a path under the dataset's sourceFolder is made relative to it, as SciCat expects).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from core import times

from .templating import FIELD_PREFIX, render, render_path

# The scientificMetadata layout below (`labbook.metadata_schema`). 2: events nested by collection; 3: the
# shot record's values and a series of numbers with their named units, a field keyed labbook/shot/events as field_<key>
SCHEMA_VERSION = 3
LABBOOK_NAMESPACE = uuid.UUID("5b0f3c7e-6c1a-4d35-9f4e-2f9b1a7d0c14")  # the UUIDv5 namespace of entry ids
NUMERIC = {"integer", "float"}
V4_REQUIRED = ("type", "ownerGroup", "contactEmail", "sourceFolder", "creationTime", "datasetName", "owner")
V3_REQUIRED = V4_REQUIRED + ("principalInvestigator", "creationLocation")
OWN_KEYS = ("labbook", "shot", "events")  # labbook's own metadata keys: a field so named goes as field_<key>


@dataclass(frozen=True)
class Target:
    """What the server's configuration contributes to every dataset."""

    api_version: str = "v4"
    owner: str = ""
    owner_group: str = ""
    access_groups: tuple[str, ...] = ()
    contact_email: str = ""
    principal_investigator: str = ""
    creation_location: str = ""
    pid_prefix: str = ""
    labbook_url: str = ""
    files_per_block: int = 1000
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Recipe:
    """A sheet's catalogue rule, as plain values."""

    sheet_name: str = ""
    name_template: str = "{sheet_name} {shot_key}"
    source_folder_template: str = "/data/{experiment}/{yyyymmdd}/{shot_number}"
    metadata_fields: tuple[str, ...] = ()  # empty: every field
    keywords: tuple[str, ...] = ()
    include_shot: bool = True


@dataclass
class Plan:
    pid: str
    dataset: dict  # the create body (with pid)
    patch: dict  # the PATCH body of an edited entry
    blocks: list[dict] = field(default_factory=list)  # OrigDatablock bodies


def dataset_pid(entry_id: str, prefix: str = "") -> str:
    """The dataset's identity: a UUIDv5 of the entry id, so every try and every process names it alike."""
    uid = str(uuid.uuid5(LABBOOK_NAMESPACE, entry_id))
    return f"{prefix.rstrip('/')}/{uid}" if prefix else uid


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def quantity(value, unit: str):
    """A number as SciCat wants it (it adds valueSI/unitSI), and a series of numbers (a spectrum)
    whose unit is named; anything else, and a NaN or infinity (`plain` made it text), as it is."""
    if is_number(value) or (unit and isinstance(value, list) and value and all(map(is_number, value))):
        return {"value": value, "unit": unit}
    return value


def is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def measured(values: dict, document: dict) -> dict:
    """An event's or envelope's values, each number or series with the unit its `metadata.units` names."""
    metadata = document.get("metadata")
    units = metadata.get("units") if isinstance(metadata, dict) else None
    units = units if isinstance(units, dict) else {}
    return {metadata_key(key): quantity(plain(value), str(units.get(key, ""))) for key, value in values.items()}


def metadata_key(name) -> str:
    """A name as a key SciCat can search by: its MongoDB reads a dot as a path (`scientificMetadata.
    a.b` never finds the key "a.b") and refuses a leading `$` before MongoDB 5, so "E.peak" becomes
    "E/peak" and "$x" "_$x"."""
    key = str(name).replace(".", "/")
    return f"_{key}" if key.startswith("$") else key


def plain(value):
    """A stored value in JSON terms: datetimes as ISO UTC text, NaN and infinities as their names
    (JSON has no such numbers: a body holding one cannot be sent at all)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("nan", "NaN").replace("inf", "Infinity")
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {metadata_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def creation_time(entry: dict, shot: dict | None = None) -> datetime:
    """The shot's laser time (the entry's, else the relay's record of its shot: an entry typed before
    the relay had the shot has none of its own), else when the entry was made."""
    laser_ns = entry.get("laser_ts_ns") or (shot or {}).get("laser_ts_ns")
    return times.from_ns(laser_ns) or entry["created"]


def template_context(entry: dict, recipe: Recipe, when: datetime, tz: str) -> dict:
    local = when.astimezone(ZoneInfo(tz))
    daq = entry.get("daq") or {}
    config = daq.get("config") if isinstance(daq.get("config"), dict) else {}
    return {
        "sheet": entry["sheet"],
        "sheet_name": recipe.sheet_name or entry["sheet"],
        "experiment": entry.get("experiment", ""),
        "shot_key": entry.get("shot_key") or "",
        "shot_number": entry.get("shot_number"),
        "date": f"{local:%Y-%m-%d}",
        "yyyymmdd": f"{local:%Y%m%d}",
        "entry_id": entry["_id"],
        "author": entry.get("author", ""),
        "daq_profile": daq.get("profile", ""),
        "daq_folder": config.get("data_folder", ""),
        **{f"{FIELD_PREFIX}{key}": value for key, value in (entry.get("values") or {}).items()},
    }


def entry_metadata(entry: dict, fields: list[dict], recipe: Recipe) -> dict:
    """The selected fields of the entry: numbers with the field's unit, text and choices plain."""
    values = entry.get("values") or {}
    chosen = set(recipe.metadata_fields)
    metadata = {}
    for definition in fields:
        key = definition["key"]
        if (chosen and key not in chosen) or values.get(key) in (None, "", []):
            continue
        value = plain(values[key])
        if definition.get("type") in NUMERIC:
            value = quantity(value, definition.get("unit", ""))
        if value is not None:
            metadata[f"{FIELD_PREFIX}{key}" if key in OWN_KEYS else key] = value
    return metadata


def event_files(events: list[dict]) -> list[dict]:
    """Every file named by the shot's events, once per path (the newest event's record wins)."""
    files: dict[str, dict] = {}
    for event in reversed(events):  # events come newest first
        for place in ("values", "metadata"):
            listed = (event.get(place) or {}).get("files")
            if isinstance(listed, list):
                for item in listed:
                    if isinstance(item, dict) and isinstance(item.get("path"), str) and item["path"]:
                        files[item["path"]] = item
    return list(files.values())


def digits(value):
    """A whole number sent as text ("2048", "1764680402") as the number; anything else as it is."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    return value


def file_size(size) -> int:
    """Bytes as a DAQ sends them (2048, 2048.0, "2048"); 0 when unknown or not a whole number."""
    size = digits(size)
    if isinstance(size, float) and size.is_integer() and size >= 0:
        return int(size)
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else 0


def event_metadata(events: list[dict]) -> dict:
    """Per collection and source, the values of the shot's events (numbers with the unit the
    event's `metadata.units` names, if any); the file lists go to the datablocks instead."""
    metadata: dict[str, dict] = {}
    for event in events:
        collection = metadata.setdefault(metadata_key(event.get("_collection", "events")), {})
        name = metadata_key(event.get("source") or event.get("kind") or "event")
        while name in collection:  # a second event of one source for the shot
            name += "+"
        values = measured({k: v for k, v in (event.get("values") or {}).items() if k != "files"}, event)
        when = times.from_ns(event.get("laser_ts_ns"))
        collection[name] = {
            "kind": event.get("kind"),
            "event_id": event.get("event_id"),
            **({"laser_time": iso(when)} if when else {}),
            **values,
        }
    return metadata


def data_file(item: dict, source_folder: str, tz: str) -> dict:
    path = item["path"]
    folder = source_folder.rstrip("/") + "/"
    if path.startswith(folder):
        path = path[len(folder) :]
    mtime = times.to_datetime(digits(item.get("mtime")), tz)  # epoch s/ms/µs/ns also as text, or ISO 8601
    described = {
        "path": path,
        "size": file_size(item.get("size")),
        "time": iso(mtime) if mtime else None,
    }
    if isinstance(item.get("checksum"), str) and item["checksum"]:
        described["chk"] = item["checksum"]
    return described


def datablocks(
    pid: str, files: list[dict], per_block: int, source_folder: str, tz: str, created: datetime
) -> list[dict]:
    """The files in blocks of at most `per_block`, each path once (the last record of it wins); a
    file without its time takes the dataset's."""
    described = (data_file(item, source_folder, tz) for item in files)
    listed = list({item["path"]: item for item in described}.values())
    for item in listed:
        item["time"] = item["time"] or iso(created)
    return blocks_of(pid, listed, per_block)


def blocks_of(pid: str, listed: list[dict], per_block: int) -> list[dict]:
    """Described files (`data_file`) in OrigDatablock bodies of at most `per_block` files."""
    per_block = max(1, per_block)
    blocks = []
    for start in range(0, len(listed), per_block):
        chunk = listed[start : start + per_block]
        algorithms = {item["chk"].split(":", 1)[0] for item in chunk if ":" in item.get("chk", "")}
        block = {"datasetId": pid, "size": sum(item["size"] for item in chunk), "dataFileList": chunk}
        if len(algorithms) == 1:
            block["chkAlg"] = algorithms.pop()
        blocks.append(block)
    return blocks


def blocks_not_in(plan: Plan, arrived: set[str], per_block: int) -> list[dict]:
    """The plan's files SciCat does not list yet (`arrived`: the paths of its datablocks), in new blocks."""
    missing = [item for block in plan.blocks for item in block["dataFileList"] if item["path"] not in arrived]
    return blocks_of(plan.pid, missing, per_block)


def build(
    entry: dict,
    fields: list[dict],
    target: Target,
    recipe: Recipe,
    *,
    entry_url: str,
    shot: dict | None = None,
    events: list[dict] | None = None,
    listed_files: list[dict] | None = None,
) -> Plan:
    """The dataset of one entry. `listed_files` are files found in the DAQ profile's folder."""
    events = events if recipe.include_shot else []
    events = events or []
    pid = dataset_pid(entry["_id"], target.pid_prefix)
    created = creation_time(entry, shot if entry.get("shot_key") else None)
    context = template_context(entry, recipe, created, target.time_zone)
    source_folder = render_path(recipe.source_folder_template, context) or f"/{entry['sheet']}"
    if not source_folder.startswith("/"):
        source_folder = "/" + source_folder
    scientific = entry_metadata(entry, fields, recipe)
    scientific["labbook"] = {
        "metadata_schema": SCHEMA_VERSION,
        "entry_id": entry["_id"],
        "entry_url": entry_url,
        "entry_revision": entry.get("rev", 1),
        "sheet": entry["sheet"],
        "sheet_schema_version": entry.get("schema_version"),
        "author": entry.get("author", ""),
        **({"comment": entry["comment"]} if entry.get("comment") else {}),
        **({"voided": plain(entry["voided"])} if entry.get("voided") else {}),  # struck out: who, when, why
    }
    if recipe.include_shot and shot:
        scientific["shot"] = {key: plain(value) for key, value in shot.items() if key != "laser_ts_ns"}
        if isinstance(shot.get("values"), dict):
            scientific["shot"]["values"] = measured(shot["values"], shot)
        when = times.from_ns(shot.get("laser_ts_ns"))
        if when:
            scientific["shot"]["laser_time"] = iso(when)
    if events:
        scientific["events"] = event_metadata(events)
    files = (listed_files or []) + event_files(events)  # an event's record of a listed file wins (its checksum)
    name = render(recipe.name_template, context).strip() or entry["_id"]
    described = {
        "datasetName": name,
        "description": f"labbook entry {entry['_id']} of sheet {recipe.sheet_name or entry['sheet']}",
        "owner": target.owner,
        "ownerGroup": target.owner_group,
        "accessGroups": list(target.access_groups),
        "contactEmail": target.contact_email,
        "creationLocation": target.creation_location,
        "creationTime": iso(created),
        "sourceFolder": source_folder,
        "keywords": list(recipe.keywords) + (["voided"] if entry.get("voided") else []),
        "scientificMetadata": scientific,
    }
    if entry.get("shot_key"):
        described["runNumber"] = entry["shot_key"]
    if target.api_version == "v3":
        described["principalInvestigator"] = target.principal_investigator
    dataset = {"pid": pid, "type": "raw", **described}
    blocks = datablocks(pid, files, target.files_per_block, source_folder, target.time_zone, created)
    # a PATCH sets only what it holds: a shot key taken away must empty runNumber, not leave the old one
    return Plan(pid=pid, dataset=dataset, patch={"runNumber": "", **described}, blocks=blocks)


def missing_required(body: dict, api_version: str) -> list[str]:
    required = V3_REQUIRED if api_version == "v3" else V4_REQUIRED
    if body.get("type") == "derived":  # v3 derived: investigator and inputs instead of PI and location
        required = V4_REQUIRED + (V3_DERIVED if api_version == "v3" else ("inputDatasets", "usedSoftware"))
    return [name for name in required if body.get(name) is None or body.get(name) == ""]


# --- simulation runs: derived datasets --------------------------------------------------------------
V3_DERIVED = ("investigator", "inputDatasets", "usedSoftware")


def simulation_pid(run_id: str, prefix: str = "") -> str:
    """A run's dataset identity, from its labbook id (one per run folder), as for entries."""
    return dataset_pid(f"simulation:{run_id}", prefix)


def run_time(run: dict, tz: str) -> datetime:
    """When the run ran, from its files: the earliest date its outputs write (openPMD's `date`,
    "2026-11-30 22:10:00 +0100"; one without an offset is read in the lab's time zone), else its
    newest file's mtime, else when it was first extracted (a run extracted a year on is not new)."""
    written = [s.get("date") for s in run.get("series") or []]
    written += [(o.get("attributes") or {}).get("date") for o in run.get("outputs") or []]
    dates = [when for text in written if (when := written_date(text, tz))]
    if dates:
        return min(dates)
    mtimes = [item["mtime"] for item in run.get("files") or [] if is_number(item.get("mtime"))]
    if mtimes:
        return datetime.fromtimestamp(max(mtimes), UTC)
    return run.get("created") or run.get("updated") or datetime.now(UTC)


def written_date(text, tz: str) -> datetime | None:
    """openPMD's date ("YYYY-MM-DD HH:mm:ss tz"), or ISO 8601; None when it is neither."""
    if not isinstance(text, str) or not text.strip():
        return None
    for layout in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%z"):
        try:
            return datetime.strptime(text.strip(), layout)
        except ValueError:
            pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(tz))


def run_metadata(run: dict) -> dict:
    """What a physicist searches a run by, every number as `{value, unit}`: the summary (a0,
    density), the openPMD series (iterations, dt, meshes with units, species, ED-PIC), the code's
    own units note and the shot keys it models; parameters go to jobParameters."""
    metadata: dict = {"code": run.get("code"), "software": run.get("software"), "version": run.get("software_version")}
    for name, entry in (run.get("summary") or {}).items():
        entry = plain(entry)  # SMILEI's density keeps its code value beside the SI one
        metadata[name] = entry if is_number(entry.get("value")) else entry.get("value")  # a NaN as text, no unit
    series = []
    for described in run.get("series") or []:
        series.append(
            {
                "path": described.get("path"),
                "openPMD": described.get("openPMD"),
                "iteration_encoding": described.get("iteration_encoding"),
                "iterations": described.get("iterations"),
                "date": described.get("date"),
                "author": described.get("author"),
                "meshes": described.get("meshes"),  # all of it: a spacing means nothing without its axes
                "species": described.get("species"),
                "ed_pic": described.get("ed_pic"),
                "code_attributes": described.get("code_attributes"),
            }
        )
    if series:
        metadata["openpmd_series"] = series
    for name in ("units", "scalars", "outputs"):  # SMILEI's: its units note, scalars.txt, its HDF5 outputs
        if run.get(name):
            metadata[name] = run[name]
    if run.get("shot_keys"):
        metadata["shot_keys"] = list(run["shot_keys"])
    return plain(metadata)


def job_parameters(run: dict) -> dict:
    """The run's input parameters, each `{value, unit}` (or its unevaluated source text), by name;
    SciCat keeps jobParameters as a free object."""
    parameters = {}
    for parameter in run.get("parameters") or []:
        entry = {k: v for k, v in parameter.items() if k != "name"}
        parameters[metadata_key(parameter["name"])] = plain(entry)
    return parameters


def build_derived(run: dict, target: Target, *, input_pids: list[str], run_url: str) -> Plan:
    """The derived dataset of a simulation run: its inputs are the datasets of the shots it models."""
    pid = simulation_pid(run["_id"], target.pid_prefix)
    created = run_time(run, target.time_zone)
    software = f"{run.get('software', '')} {run.get('software_version', '')}".strip() or run.get("code", "")
    scientific = run_metadata(run)
    scientific["labbook"] = {
        "metadata_schema": SCHEMA_VERSION,
        "simulation_id": run["_id"],
        "simulation_url": run_url,
        "entry_revision": run.get("rev", 1),  # the revision SciCat has (as for entries)
        "extractor": run.get("extractor"),
        **({"experiment": run["experiment"]} if run.get("experiment") else {}),
    }
    described = {
        "datasetName": f"{software} {run.get('name', run['_id'])}".strip(),
        "description": f"labbook simulation run {run.get('path', '')}",
        "owner": target.owner,
        "ownerGroup": target.owner_group,
        "accessGroups": list(target.access_groups),
        "contactEmail": target.contact_email,
        "creationTime": iso(created),
        "sourceFolder": run.get("path") or f"/simulations/{run['_id']}",
        "keywords": ["simulation", run.get("code", "")],
        "inputDatasets": list(input_pids),
        "usedSoftware": [software],
        "jobParameters": job_parameters(run),
        "scientificMetadata": scientific,
    }
    if target.api_version == "v3":
        described["investigator"] = target.principal_investigator or target.owner
    dataset = {"pid": pid, "type": "derived", **described}
    files = [
        {"path": f"{run.get('path', '').rstrip('/')}/{item['path']}", "size": item.get("size"),
         "mtime": item.get("mtime"), **({"checksum": f"sha256:{item['sha256']}"} if item.get("sha256") else {})}
        for item in run.get("files") or []
    ]  # fmt: skip
    blocks = datablocks(pid, files, target.files_per_block, described["sourceFolder"], target.time_zone, created)
    return Plan(pid=pid, dataset=dataset, patch=described, blocks=blocks)
