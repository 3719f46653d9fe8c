"""The OpenAPI schema is valid, documents every API route, and every documented GET answers 200.

The walk is generic: it takes the paths from the schema, fills path and required query parameters
from `parameter_values` (real test data), and fails for a parameter it has no value for — an
endpoint added without test data is reported, never skipped.
"""

import csv
import io
import re
import time

import orjson
import pytest
from openapi_spec_validator import validate

from api import urls as api_urls
from core.envelope import make_envelope
from tests.watcher.ingest import ingest

UNDOCUMENTED = {"v1/schema/", "v1/docs/"}  # the schema and its page document the others
EXAMPLE_QUERIES = {"/api/v1/timeseries/": {"sheet": "apisheet"}}  # it needs one of two optional parameters


@pytest.fixture
def schema(member, bearer, db):
    response = bearer(member).get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return orjson.loads(response.content)


@pytest.fixture
def parameter_values(api_entries) -> dict[str, str]:
    """A real value for each path (and required query) parameter of the documented endpoints.
    An endpoint with a new parameter adds it here, with the data it needs."""
    event = make_envelope(
        experiment="API", source="probe", kind="measurement", shot_number=1, laser_ts_ns=None, tz="UTC", seq=1
    )
    ingest("diag", [{**event, "laser_ts_ns": time.time_ns()}])
    return {
        "slug": "apisheet",
        "entry_id": api_entries[0]["_id"],
        "shot_key": api_entries[0]["shot_key"],
        "collection": "diag",
        "field": "energy",
    }


def test_the_schema_is_valid_openapi_3(schema):
    validate(schema)
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal token from /api/tokens/.",
    }


def test_every_api_route_is_in_the_schema(schema):
    routes = {
        "/api/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        for pattern in api_urls.urlpatterns
        if str(pattern.pattern).startswith("v1/") and str(pattern.pattern) not in UNDOCUMENTED
    }
    assert routes and routes == set(schema["paths"])


def test_every_documented_get_answers_200_with_a_token(schema, parameter_values, member, bearer):
    client = bearer(member)
    called = []
    for path, operations in schema["paths"].items():
        assert set(operations) <= {"get", "parameters"}, f"{path} documents a method that writes"
        operation = operations["get"]
        path_names = re.findall(r"{(\w+)}", path)
        required = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and p.get("required")]
        missing = [name for name in path_names + required if name not in parameter_values]
        assert not missing, f"{path}: no test value for {missing}: add it to parameter_values"
        url = re.sub(r"{(\w+)}", lambda m: parameter_values[m.group(1)], path)
        query = {name: parameter_values[name] for name in required} | EXAMPLE_QUERIES.get(path, {})
        response = client.get(url, query)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        assert response["Content-Type"] == "application/json", url
        orjson.loads(response.content)
        documented = operation["responses"]["200"]["content"]
        if "text/csv" in documented:
            as_csv = client.get(url, {**query, "format": "csv"})
            assert as_csv.status_code == 200 and as_csv["Content-Type"].startswith("text/csv"), url
            header = next(csv.reader(io.StringIO(as_csv.content.decode())))
            assert header, url
        called.append(path)
    assert len(called) == len(schema["paths"]) >= 4


def test_the_docs_page_needs_a_login_and_serves_its_script(client, member):
    assert client.get("/api/v1/docs/")["Location"].startswith("/accounts/login/")
    client.force_login(member)
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.content
    script = client.get("/api/v1/docs/?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert b"/api/v1/schema/" in script.content
