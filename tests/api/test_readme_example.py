"""The README's Python / pandas example, run as printed against a live server (real HTTP, a real
token, `requests` and pandas as an analysis script uses them): only the address, the token, the
sheet and the shot key are swapped for this test's."""

import re
from pathlib import Path

import pytest

from .test_shots_events import events, recorded  # noqa: F401 (fixtures)

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    start = text.index("**Python / pandas**")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


@pytest.mark.django_db(transaction=True)
def test_the_readme_pandas_example_runs_as_printed(live_server, api_entries, member, token_of, recorded, events):  # noqa: F811
    _, token = token_of(member)
    shot_key = recorded[0]["shot_key"]
    code = (
        readme_example()
        .replace('"https://labbook.example.org"', repr(live_server.url))
        .replace('"Bearer lbk_…"', repr(f"Bearer {token}"))
        .replace("/sheets/lwfa/", "/sheets/apisheet/")
        .replace("LWFA-20261124-000042", shot_key)
    )
    assert code.count(live_server.url) == 1 and "apisheet" in code and shot_key in code
    scope: dict = {}
    exec(compile(code, "README.md (Python / pandas)", "exec"), scope)

    entries = scope["entries"]  # every page: the two Cu entries of 2026-11-24
    assert sorted(entry["values"]["energy"] for entry in entries) == [2.5, 40.25]
    assert scope["units"]["energy"]["unit"] == "J"
    df = scope["df"]  # the CSV, read back by pandas with its parsed times
    assert sorted(df["Energy [J]"]) == [-0.5, 1.5, 2.5, 12.0, 40.25]
    assert str(df["created [UTC]"].dtype).startswith("datetime64")
    assert len(scope["events"]) == 3 and set(scope["events"]["values.charge_pC"]) == {11, 12, 13}
    assert scope["envelope"]["shot_key"] == shot_key
