"""Each body checked before it is sent, with the models of scitacean (SciCat's maintained Python
client, API v4) and, for v3, the raw dataset's required fields: a body SciCat would refuse fails
its job here, with the reason, without a request. Unknown keys count as errors: SciCat's v4
backend refuses them (400), while pydantic would drop them silently."""

from __future__ import annotations

from functools import lru_cache

import pydantic
from scitacean import model

from .builder import missing_required

EXTRA_DATASET_KEYS = {"pid"}  # SciCat takes a client's pid (CREATE_DATASET_WITH_PID_GROUPS); scitacean has no field


class UploadDataset(model.UploadDataset):
    """scitacean's model, with its check of the e-mail addresses remembered per address: a server's
    contact address is the same in every body, and the check (email_validator) was most of the
    model's cost, ~30 µs of its ~45 µs a body. A refused address is checked again each time."""

    @pydantic.field_validator("contactEmail", "ownerEmail", mode="before")
    @classmethod
    def _validate_emails(cls, value):
        return checked_emails(value)


@lru_cache(maxsize=256)
def checked_emails(value):
    return model.UploadDataset._validate_emails(value)


def _errors(model_class: type[pydantic.BaseModel], body: dict, allowed_extra: set[str] = frozenset()) -> list[str]:
    known = model_class.model_fields  # a class property: looked up once, not once per key
    unknown = sorted(set(body) - known.keys() - allowed_extra)
    errors = [f"{key}: not a field of {model_class.__name__}" for key in unknown]
    try:
        model_class.model_validate({k: v for k, v in body.items() if k in known})
    except pydantic.ValidationError as exc:
        errors += [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return errors


def dataset_errors(body: dict, api_version: str) -> list[str]:
    missing = [f"{name}: required" for name in missing_required(body, api_version)]
    if api_version == "v3":
        return missing
    return missing + _errors(UploadDataset, body, EXTRA_DATASET_KEYS)


def patch_errors(body: dict, api_version: str) -> list[str]:
    if api_version == "v3":
        return []
    unknown = sorted(set(body) - set(UploadDataset.model_fields))
    return [f"{key}: not a field of UploadDataset" for key in unknown]


def block_errors(body: dict) -> list[str]:
    errors = _errors(model.UploadOrigDatablock, body)
    for i, item in enumerate(body.get("dataFileList") or []):
        errors += [f"dataFileList.{i}.{error}" for error in _errors(model.UploadDataFile, item)]
    return errors
