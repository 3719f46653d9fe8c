"""SciCat's own contract: request bodies checked against the schemas of the backend's OpenAPI
document (scicat-backend-next 4.x, API v3 and v4, kept beside this file). The DTOs' top level is
made strict, as the backend is: an unknown key there is refused (400)."""

import json
from functools import cache
from pathlib import Path

from openapi_schema_validator import OAS30Validator, oas30_format_checker

DOCUMENT = Path(__file__).with_name("scicat-backend-openapi.json")
DATASET_CREATE = {"v4": "CreateDatasetDto", "v3": "CreateRawDatasetObsoleteDto"}
DATASET_PATCH = {"v4": "PartialUpdateDatasetDto", "v3": "PartialUpdateRawDatasetObsoleteDto"}
DERIVED_CREATE = {"v4": "CreateDatasetDto", "v3": "CreateDerivedDatasetObsoleteDto"}  # v3 has a DTO per type
DERIVED_PATCH = {"v4": "PartialUpdateDatasetDto", "v3": "PartialUpdateDerivedDatasetObsoleteDto"}
ORIGDATABLOCK_CREATE = "CreateOrigDatablockDto"
LOGIN = "CredentialsDto"


@cache
def document() -> dict:
    return json.loads(DOCUMENT.read_text())


@cache
def validator(schema_name: str) -> OAS30Validator:
    schema = {**document()["components"]["schemas"][schema_name], "additionalProperties": False}
    return OAS30Validator({**schema, "components": document()["components"]}, format_checker=oas30_format_checker)


def errors(body, schema_name: str) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator(schema_name).iter_errors(body)
    ]
