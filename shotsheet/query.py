"""The table's filters and sort from the URL: a MongoDB query built from the sheet's columns, never
from raw parameters (shotsheet/table.py evaluates it in memory)."""

from __future__ import annotations

import re
from datetime import datetime

from django.utils import timezone

from .display import created_header
from .models import Field
from .numbers import NumberError, parse_number
from .schema import CHOICES, NUMERIC, SheetSchema


def table_filters(schema: SheetSchema, params) -> list[dict]:
    """The table's filter inputs (built from the sheet's columns), each with its value from the URL."""
    groups = [
        {"label": "shot key", "inputs": [{"name": "shot", "placeholder": "contains", "type": "text"}]},
        {
            "label": created_header(),
            "inputs": [
                {"name": "from", "placeholder": "from", "type": "datetime-local"},
                {"name": "to", "placeholder": "to", "type": "datetime-local"},
            ],
        },
    ]
    for column in schema.columns:
        key, kind = column.key, column.type
        if kind in NUMERIC:
            inputs = [
                {"name": f"f_{key}_min", "placeholder": "min", "type": "text", "inputmode": "decimal"},
                {"name": f"f_{key}_max", "placeholder": "max", "type": "text", "inputmode": "decimal"},
            ]
        elif kind == Field.Type.DATETIME:
            inputs = [
                {"name": f"f_{key}_from", "placeholder": "from", "type": "datetime-local"},
                {"name": f"f_{key}_to", "placeholder": "to", "type": "datetime-local"},
            ]
        elif kind == Field.Type.BOOLEAN:
            inputs = [{"name": f"f_{key}", "type": "select", "options": ["", "true", "false"]}]
        elif kind == Field.Type.JSON:
            continue
        else:
            inputs = [{"name": f"f_{key}", "placeholder": "equals" if kind in CHOICES else "contains", "type": "text"}]
        groups.append({"label": column.label, "inputs": inputs})
    for group in groups:
        for item in group["inputs"]:
            item["value"] = params.get(item["name"], "").strip()
    return groups


class Problem(str):
    """A problem with a filter, as the page shows it, knowing the URL parameter it is about (the API
    names it in its 400s)."""

    parameter: str

    def __new__(cls, parameter: str, text: str) -> Problem:
        problem = super().__new__(cls, text)
        problem.parameter = parameter
        return problem


def table_query(schema: SheetSchema, params) -> tuple[dict, list, list[Problem]]:
    """(MongoDB filter, sort, problems) for the URL's query parameters: never raw operators."""
    sheet, columns = schema.sheet, schema.by_key
    query: dict = {"sheet": sheet.slug}
    problems = []

    def number(raw: str) -> float:
        return float(parse_number(raw, sheet.decimal_mark))

    def bounds(path: str, label: str, low: str, high: str, parse) -> None:
        found = {}
        for name, op in ((low, "$gte"), (high, "$lte")):
            if raw := text(name):
                try:
                    found[op] = parse(raw)
                except NumberError as exc:
                    problems.append(Problem(name, f"{label}: {exc}"))
                except ValueError:
                    problems.append(Problem(name, f"{label}: '{raw}' is not a date/time"))
        if found:
            query[path] = found

    def text(name: str) -> str:
        return params.get(name, "").strip()

    bounds("created", "created", "from", "to", parse_time)
    for key, column in columns.items():
        kind = column.type
        if kind in NUMERIC:
            bounds(f"values.{key}", column.label, f"f_{key}_min", f"f_{key}_max", number)
        elif kind == Field.Type.DATETIME:
            bounds(f"values.{key}", column.label, f"f_{key}_from", f"f_{key}_to", parse_time)
        elif raw := text(f"f_{key}"):
            if kind == Field.Type.BOOLEAN:
                query[f"values.{key}"] = raw.lower() in ("true", "yes", "1")
            elif kind in CHOICES:
                query[f"values.{key}"] = raw  # matches a list element too (multi-choice)
            elif kind != Field.Type.JSON:
                query[f"values.{key}"] = {"$regex": re.escape(raw), "$options": "i"}
    if shot := text("shot"):
        query["shot_key"] = {"$regex": re.escape(shot), "$options": "i"}
    sort_key = params.get("sort", "-created")
    direction = -1 if sort_key.startswith("-") else 1
    name = sort_key.lstrip("-")
    if name in ("created", "shot_key", "author"):
        sort = [(name, direction)]
    elif name in columns:
        sort = [(f"values.{name}", direction)]
    else:
        problems.append(Problem("sort", f"cannot sort by '{name}'"))
        sort = [("created", -1)]
    if sort[0][0] != "created":
        sort.append(("created", -1))
    sort.append(("_id", -1))  # entries saved in the same millisecond still come in one order
    return query, sort, problems


def parse_time(raw: str) -> datetime:
    """An ISO date or date/time from a filter; without a zone it is the lab's local time."""
    value = datetime.fromisoformat(raw)
    return timezone.make_aware(value) if timezone.is_naive(value) else value
