"""The shot sheet's Prometheus metrics, in the web process's registry (served at `/metrics`).

Labels: a sheet's slug (sheets are made in the admin: a bounded few) and how an entry was saved.
"""

from prometheus_client import Counter, Gauge, Histogram

from core.metrics import LATENCY_BUCKETS

ENTRIES_SAVED = Counter(
    "labbook_shotsheet_entries_saved", "Entries saved, by sheet and how (new, edit, import).", ["sheet", "how"]
)
TABLE_ENTRIES = Gauge("labbook_shotsheet_table_entries", "Entries in a sheet's table (read model).", ["sheet"])
TABLE_READ_SECONDS = Histogram(
    "labbook_shotsheet_table_read_seconds",
    "Time to read a sheet's whole table from MongoDB (first use, a reset database, the 30-minute re-read).",
    ["sheet"],
    buckets=(*LATENCY_BUCKETS, 60, 120),
)
