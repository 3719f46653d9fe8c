"""What the OpenAPI schema says about the shots, shot-join, events and time-series endpoints."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers

from .docs import ENTRY_FIELDS, FIELDS_BLOCK

QUERY = OpenApiParameter.QUERY
PATH = OpenApiParameter.PATH

SHOT_KEY = OpenApiParameter(
    "shot_key", OpenApiTypes.STR, PATH, description="`<experiment>[-r<run>]-<YYYYMMDD>-<shot>`."
)
COLLECTION = OpenApiParameter("collection", OpenApiTypes.STR, PATH, description="A collection a watcher route writes.")
SINCE = OpenApiParameter(
    "since", OpenApiTypes.DATETIME, QUERY, description="From this time (included; UTC unless an offset is given)."
)
UNTIL = OpenApiParameter("until", OpenApiTypes.DATETIME, QUERY, description="To this time (excluded).")

SHOTS_DESCRIPTION = """The drive laser's shots as the relay recorded them, newest first: by laser time
(`since`/`until`; a shot without laser time by the relay's time), or with `number_min`/`number_max`
by shot number (shot numbers restart every day and run: add `experiment`, and `since`/`until` to
pick the days). Found through the relay's indexes by time and number (look-ups by key only);
`search` says how many look-ups the page took and whether it stopped at its limit (`complete`:
false; go on with `next`, or narrow the range), and `indexed: false` when the relay's older records
were read whole (run `manage.py relay_index_shots` once). Records made before the relay kept the
whole envelope have only key, number, laser time, event id and source (the rest null)."""

SHOTS_PARAMETERS = [
    SINCE,
    UNTIL,
    OpenApiParameter("number_min", OpenApiTypes.INT, QUERY, description="Shot number from (included)."),
    OpenApiParameter("number_max", OpenApiTypes.INT, QUERY, description="Shot number to (included)."),
    OpenApiParameter("experiment", OpenApiTypes.STR, QUERY, description="Only this experiment's shots."),
]

SHOT = {
    "shot_key": serializers.CharField(),
    "shot_number": serializers.IntegerField(allow_null=True),
    "experiment": serializers.CharField(allow_null=True),
    "source": serializers.CharField(allow_null=True),
    "laser_time": serializers.DateTimeField(allow_null=True),
    "laser_ts_ns": serializers.IntegerField(allow_null=True, help_text="UTC ns, exact."),
    "relay_time": serializers.DateTimeField(allow_null=True),
    "relay_ts_ns": serializers.IntegerField(allow_null=True),
    "seq": serializers.IntegerField(allow_null=True),
    "event_id": serializers.CharField(allow_null=True),
    "values": serializers.DictField(allow_null=True),
    "flags": serializers.DictField(allow_null=True, help_text="gap, duplicate, counter_reset, relay_restart"),
}
SHOTS_SEARCH = inline_serializer(
    "ShotSearch",
    {
        "complete": serializers.BooleanField(),
        "indexed": serializers.BooleanField(),
        "lookups": serializers.IntegerField(),
    },
)
SHOT_PAGE = inline_serializer(
    "ShotPage",
    {
        "next": serializers.URLField(allow_null=True),
        "search": SHOTS_SEARCH,
        "results": inline_serializer("Shot", SHOT, many=True),
    },
)

SHOT_JOIN_DESCRIPTION = """Everything known of one shot key in one request: the relay's record (its
envelope), the sheet entries you may view (each with its sheet and the fields' units), and every
event the watcher ingested for it (any routed collection, newest first), and the simulation runs
that model it. Each list says whether it
was cut at its limit (`truncated`). A key nothing is known of (no relay record, no entry you may
view, no event) is a 404; otherwise 200 with the parts that are empty."""

SHOT_JOIN = inline_serializer(
    "ShotJoin",
    {
        "shot_key": serializers.CharField(),
        "parsed": serializers.DictField(allow_null=True, help_text="experiment, date, run, number"),
        "relay": inline_serializer("ShotRelay", {"record": inline_serializer("ShotRecord", SHOT, allow_null=True)}),
        "entries": inline_serializer(
            "ShotEntries",
            {
                "results": inline_serializer(
                    "ShotEntry",
                    {
                        "sheet": serializers.CharField(),
                        "sheet_name": serializers.CharField(),
                        **ENTRY_FIELDS,
                        "fields": FIELDS_BLOCK,
                    },
                    many=True,
                ),
                "limit": serializers.IntegerField(),
                "truncated": serializers.BooleanField(),
                "stale_since": serializers.DateTimeField(allow_null=True),
            },
        ),
        "events": inline_serializer(
            "ShotEvents",
            {
                "results": serializers.ListField(
                    child=serializers.DictField(), help_text="Stored events, with `_collection`."
                ),
                "limit": serializers.IntegerField(),
                "truncated": serializers.BooleanField(),
            },
        ),
        "simulations": inline_serializer(
            "ShotSimulations",
            {
                "results": inline_serializer(
                    "ShotSimulation",
                    {
                        "id": serializers.CharField(),
                        "name": serializers.CharField(),
                        "code": serializers.CharField(help_text="warpx, picongpu or smilei"),
                        "software": serializers.CharField(),
                        "software_version": serializers.CharField(),
                        "summary": serializers.DictField(help_text="a0, density: each {value, unit}"),
                        "experiment": serializers.CharField(allow_null=True),
                        "url": serializers.CharField(help_text="the run's page in labbook"),
                    },
                    many=True,
                )
            },
        ),
    },
)

EVENTS_DESCRIPTION = """Events of one routed collection, newest first (by `_ts`, then `_id`): the
watcher's search. `source`, `kind`, `shot_key` and `field`=`value` (a plain dotted field name; the
value matches as text, number or true/false, never as an operator) filter; `since`/`until` on the
event time `_ts`. `search` reports what the search read (index references `examined`, events
`fetched`) and `complete: false` when it stopped at its limits (`max_fetched`, `max_examined`)
before the page was full: narrow the time range. At most 1,000 events a page."""

EVENTS_PARAMETERS = [
    SINCE,
    UNTIL,
    OpenApiParameter("source", OpenApiTypes.STR, QUERY, description="The event's source equals."),
    OpenApiParameter("kind", OpenApiTypes.STR, QUERY, description="The event's kind equals."),
    OpenApiParameter("shot_key", OpenApiTypes.STR, QUERY, description="The event's shot key equals."),
    OpenApiParameter("field", OpenApiTypes.STR, QUERY, description="A dotted field name, e.g. `values.energy`."),
    OpenApiParameter("value", OpenApiTypes.STR, QUERY, description="What `field` equals (text, number, true/false)."),
]

EVENT_PAGE = inline_serializer(
    "EventPage",
    {
        "next": serializers.URLField(allow_null=True),
        "search": inline_serializer(
            "EventSearch",
            {
                "complete": serializers.BooleanField(),
                "indexed": serializers.BooleanField(help_text="false: the collection was read whole"),
                "examined": serializers.IntegerField(),
                "fetched": serializers.IntegerField(),
                "max_examined": serializers.IntegerField(),
                "max_fetched": serializers.IntegerField(),
            },
        ),
        "results": serializers.ListField(child=serializers.DictField()),
    },
)

TIMESERIES_DESCRIPTION = """One numeric field over a time range as rows of `time,value`, oldest
first: `sheet=<slug>&field=<key>` (a number field of a sheet you may view; `time=entry` the entry's
time, `time=shot` its shot's laser time) or `collection=<name>&field=<dotted path>` (a routed
collection's events, at their `_ts`). `since` defaults to an hour before `until` (default: now);
the range may be at most `API_TIMESERIES_MAX_DAYS` days. With `interval` (`500ms`, `10s`, `1m`,
`1h`, `1d`) the values are reduced per interval (`reduce=mean|min|max|count`, default mean; the
row's time is the interval's start, intervals counted from the epoch). Values that are not numbers
are left out and counted (`skipped`; no value at all: `missing`); an events range reads at most
`API_TIMESERIES_MAX_EVENTS` events, newest first, and says `complete: false` if it stopped there.
CSV: the header `time,value`, times ISO 8601 UTC (for Grafana's Infinity plugin)."""

TIMESERIES_PARAMETERS = [
    OpenApiParameter(
        "field",
        OpenApiTypes.STR,
        QUERY,
        required=True,
        description="A sheet field's key or an event field's dotted path.",
    ),
    OpenApiParameter("sheet", OpenApiTypes.STR, QUERY, description="A sheet's slug (or `collection`)."),
    OpenApiParameter("collection", OpenApiTypes.STR, QUERY, description="A routed collection (or `sheet`)."),
    SINCE,
    UNTIL,
    OpenApiParameter("time", OpenApiTypes.STR, QUERY, enum=["entry", "shot"], description="Sheets: which time."),
    OpenApiParameter("interval", OpenApiTypes.STR, QUERY, description="Reduce per interval: `10s`, `1m`, …"),
    OpenApiParameter(
        "reduce", OpenApiTypes.STR, QUERY, enum=["mean", "min", "max", "count"], description="With `interval`."
    ),
    OpenApiParameter("format", OpenApiTypes.STR, QUERY, enum=["json", "csv"], description="Or `Accept: text/csv`."),
]

TIMESERIES = inline_serializer(
    "TimeSeries",
    {
        "fields": serializers.DictField(help_text="`time` (UTC; what it is) and `value` (field, label, unit)."),
        "rows": inline_serializer(
            "TimeValue", {"time": serializers.DateTimeField(), "value": serializers.FloatField()}, many=True
        ),
        "skipped": serializers.IntegerField(),
        "missing": serializers.IntegerField(),
        "read": serializers.IntegerField(),
        "complete": serializers.BooleanField(),
    },
)
