"""What the OpenAPI schema says about the endpoints: parameters and response shapes.

The views answer plain dicts (orjson), not serializers; these serializers only describe them.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

QUERY = OpenApiParameter.QUERY
PATH = OpenApiParameter.PATH

SLUG = OpenApiParameter("slug", OpenApiTypes.STR, PATH, description="The sheet's slug.")
ENTRY_ID = OpenApiParameter("entry_id", OpenApiTypes.STR, PATH, description="The entry's id.")

LIST_PARAMETERS = [
    OpenApiParameter(
        "page_size", OpenApiTypes.INT, QUERY, description="Items per page (default and maximum: settings)."
    ),
    OpenApiParameter("cursor", OpenApiTypes.STR, QUERY, description="From the `next` link of the previous page."),
    OpenApiParameter("format", OpenApiTypes.STR, QUERY, enum=["json", "csv"], description="Or `Accept: text/csv`."),
]

ENTRIES_DESCRIPTION = """The same filters, with the same names and meaning, as the sheet's web table
(its URL parameters): `shot` (shot key contains), `from`/`to` (entry time; without an offset the
lab's local time, as in the table), and per field `f_<key>` (text contains, choice or yes/no
equals), `f_<key>_min`/`f_<key>_max` (numbers), `f_<key>_from`/`f_<key>_to` (dates), `sort`
(`created`, `shot_key`, `author` or a field key; `-` for descending; default `-created`). A
parameter the endpoint does not read is refused (400). `fields=a,b` picks the value columns.
`since`/`until` (ISO 8601, UTC unless an offset is given; `until` excluded) apply to the entry's
time or, with `time=shot`, its shot's laser time. JSON values are typed, times ISO 8601 UTC; the
`fields` block gives each column's label, type and unit. CSV names each field `label [unit]`, as
the web export does."""

ENTRY_PARAMETERS = [
    OpenApiParameter("shot", OpenApiTypes.STR, QUERY, description="Shot key contains (case-blind)."),
    OpenApiParameter("from", OpenApiTypes.STR, QUERY, description="Entry time from (as in the web table)."),
    OpenApiParameter("to", OpenApiTypes.STR, QUERY, description="Entry time to (as in the web table)."),
    OpenApiParameter("sort", OpenApiTypes.STR, QUERY, description="A column, `-` first for descending."),
    OpenApiParameter("fields", OpenApiTypes.STR, QUERY, description="Comma-separated field keys."),
    OpenApiParameter("since", OpenApiTypes.DATETIME, QUERY, description="From this time (included)."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, QUERY, description="To this time (excluded)."),
    OpenApiParameter("time", OpenApiTypes.STR, QUERY, enum=["entry", "shot"], description="What since/until apply to."),
]

ERROR = inline_serializer(
    "Errors",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "Error",
                {
                    "parameter": serializers.CharField(allow_null=True, help_text="The query parameter, if any."),
                    "problem": serializers.CharField(),
                },
            )
        )
    },
)
ERRORS = {
    400: OpenApiResponse(ERROR, description="A query parameter it cannot answer (each one named)."),
    401: OpenApiResponse(ERROR, description="No, an unknown, a revoked or an expired token."),
    404: OpenApiResponse(ERROR, description="No such thing, or one you may not view."),
    429: OpenApiResponse(ERROR, description="Too many requests; see Retry-After."),
}


class SheetField(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    type = serializers.CharField()
    unit = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())
    choice_source = serializers.DictField(allow_null=True)
    required = serializers.BooleanField()
    archived = serializers.BooleanField()


def fields_list():
    return SheetField(many=True)


SHEET_FIELDS = {
    "slug": serializers.CharField(),
    "name": serializers.CharField(),
    "description": serializers.CharField(),
    "experiment": serializers.CharField(),
    "active": serializers.BooleanField(),
    "created": serializers.DateTimeField(),
    "schema_version": serializers.IntegerField(allow_null=True),
    "fields": fields_list(),
}

SHEET_PAGE = inline_serializer(
    "SheetPage",
    {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "results": inline_serializer("Sheet", SHEET_FIELDS, many=True),
    },
)
SHEET_DETAIL = inline_serializer(
    "SheetDetail",
    {
        **SHEET_FIELDS,
        "schema_versions": inline_serializer(
            "SchemaVersion",
            {"number": serializers.IntegerField(), "created": serializers.DateTimeField(), "fields": fields_list()},
            many=True,
        ),
    },
)
FIELDS_BLOCK = serializers.DictField(
    child=inline_serializer(
        "FieldUnit",
        {"label": serializers.CharField(), "type": serializers.CharField(), "unit": serializers.CharField()},
    ),
    help_text="Per field key: label, type and unit.",
)
ENTRY_FIELDS = {
    "id": serializers.CharField(),
    "shot_key": serializers.CharField(allow_null=True),
    "shot_number": serializers.IntegerField(allow_null=True),
    "laser_time": serializers.DateTimeField(allow_null=True),
    "created": serializers.DateTimeField(),
    "updated": serializers.DateTimeField(),
    "author": serializers.CharField(),
    "schema_version": serializers.IntegerField(),
    "rev": serializers.IntegerField(),
    "comment": serializers.CharField(),
    "values": serializers.DictField(help_text="Typed values by field key."),
}

ENTRY_PAGE = inline_serializer(
    "EntryPage",
    {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "fields": FIELDS_BLOCK,
        "results": inline_serializer("Entry", ENTRY_FIELDS, many=True),
    },
)
ENTRY_DETAIL = inline_serializer(
    "EntryDetail",
    {
        **ENTRY_FIELDS,
        "fields": FIELDS_BLOCK,
        "daq": serializers.DictField(allow_null=True),
        "history": inline_serializer(
            "Change",
            {
                "who": serializers.CharField(),
                "when": serializers.DateTimeField(),
                "changes": serializers.DictField(help_text="Per field: {old, new}."),
            },
            many=True,
        ),
    },
)
