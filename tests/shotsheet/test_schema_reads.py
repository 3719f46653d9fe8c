"""A request reads the sheet's fields and schema versions once (schema.schema_for), whatever it shows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from shotsheet.models import Field
from shotsheet.schema import save_version


@pytest.mark.parametrize(
    "page",
    [
        "/sheets/test/?f_energy_min=1&f_target=Al&sort=-energy",
        "/sheets/test/plot.json?y=energy",
        "/sheets/test/export.csv",
        "/sheets/test/new/",
    ],
)
def test_a_page_reads_the_fields_and_versions_once(admin_client, sheet, make_entry, mongo_db, page):
    make_entry(sheet, energy=2.0)
    Field.objects.create(sheet=sheet, key="gas", label="Gas", type=Field.Type.TEXT, position=9)
    save_version(sheet)
    admin_client.get(page)  # the table read into memory, the session
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(page).status_code == 200
    tables = [
        q["sql"].split(" FROM ")[1].split()[0].strip('"') for q in queries.captured_queries if " FROM " in q["sql"]
    ]
    assert tables.count("shotsheet_field") == 1 and tables.count("shotsheet_schemaversion") == 1, tables
