"""`manage.py extract_sim` over many runs, re-runs that update, the list, search, detail and shot links."""

import io

import pytest
from django.core.management import CommandError, call_command

from simulations import store

from .runs import picongpu_run, smilei_run, warpx_run

pytestmark = pytest.mark.django_db


def extract(*args) -> str:
    out = io.StringIO()
    call_command("extract_sim", *map(str, args), "--settle", "0", stdout=out, stderr=out)
    return out.getvalue()


def test_extracting_stores_each_run_once_and_a_rerun_updates_it(tmp_path, mongo_db):
    warpx = warpx_run(tmp_path / "LWFA-20261124-000042_a0_2.5")
    smilei = smilei_run(tmp_path / "smilei-scan-1")
    printed = extract(warpx, smilei, "--experiment", "LWFA", "--shots", "LWFA-20261124-000041")
    assert f"stored {warpx}: WarpX 25.01, 1 openPMD series" in printed and "a0 2.5 1" in printed
    assert "shots LWFA-20261124-000041, LWFA-20261124-000042" in printed  # given, and matched by the folder
    assert mongo_db[store.SIMULATIONS].count_documents({}) == 2
    first = store.run(store.summaries()[0]["_id"])

    (warpx / "warpx_used_inputs").write_text((warpx / "warpx_used_inputs").read_text().replace("a0 = 2.5", "a0 = 3.0"))
    extract(warpx)  # no --experiment, no --shots: what was given stays
    assert mongo_db[store.SIMULATIONS].count_documents({}) == 2
    again = next(r for r in store.summaries() if r["code"] == "warpx")
    assert again["summary"]["a0"]["value"] == 3.0 and again["experiment"] == "LWFA"
    assert again["shot_keys"] == ["LWFA-20261124-000041", "LWFA-20261124-000042"]
    assert again["created"] == store.run(again["_id"])["created"] and first["created"] <= again["updated"]


def test_a_bad_run_is_reported_and_the_others_still_extracted(tmp_path, mongo_db):
    good = picongpu_run(tmp_path / "pic")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "smilei.py").write_text("import os\n")
    with pytest.raises(CommandError, match="1 of 2 runs not extracted"):
        extract(bad, good)
    assert [r["code"] for r in store.summaries()] == ["picongpu"]


def test_a_dry_run_stores_nothing(tmp_path, mongo_db):
    printed = extract(warpx_run(tmp_path / "w"), "--dry-run")
    assert "found " in printed and mongo_db[store.SIMULATIONS].count_documents({}) == 0


def test_bad_shot_keys_are_refused_before_anything_is_read(tmp_path, mongo_db):
    with pytest.raises(CommandError, match="not shot keys: shot42"):
        extract(warpx_run(tmp_path / "w"), "--shots", "shot42")


def test_the_list_searches_by_code_version_and_parameter_ranges(tmp_path, mongo_db, admin_client):
    warpx_run(tmp_path / "warpx-a0-2.5")
    smilei_run(tmp_path / "smilei-dense")
    picongpu_run(tmp_path / "pic-no-inputs")
    extract(tmp_path / "warpx-a0-2.5", tmp_path / "smilei-dense", tmp_path / "pic-no-inputs")

    def names(**params) -> list[str]:
        page = admin_client.get("/simulations/", params).content.decode()
        return sorted(part.split('"')[0] for part in page.split('data-run="')[1:])

    assert names() == ["pic-no-inputs", "smilei-dense", "warpx-a0-2.5"]
    assert names(code="smilei") == ["smilei-dense"]
    assert names(version="25.0") == ["warpx-a0-2.5"]
    assert names(a0_min="2", a0_max="3") == ["smilei-dense", "warpx-a0-2.5"]  # pic has no a0: out of any range
    assert names(density_min="2e24") == ["smilei-dense"]  # 2.96e24 m^-3 (0.0017 n_c at 0.8 µm) vs 1.5e24
    assert names(density_max="2e24") == ["warpx-a0-2.5"]
    page = admin_client.get("/simulations/", {"a0_min": "lots", "code": '{"$ne": 1}'}).content.decode()
    assert "a0 min: &#x27;lots&#x27; is not a number" in page


def test_detail_page_and_the_shot_page_link_each_other(tmp_path, mongo_db, admin_client):
    extract(warpx_run(tmp_path / "LWFA-20261124-000042"))
    [run] = store.summaries()
    page = admin_client.get(f"/simulations/{run['_id']}/").content.decode()
    assert "WarpX 25.01" in page and "laser1.a0" in page and "2.5 1 = a0" in page and "V/m" in page
    assert "/watcher/shot/LWFA-20261124-000042/" in page
    shot_page = admin_client.get("/watcher/shot/LWFA-20261124-000042/").content.decode()
    assert f"/simulations/{run['_id']}/" in shot_page and "(WarpX 25.01)" in shot_page
    assert admin_client.get("/simulations/sim:nothing/").status_code == 404


def test_simulation_pages_require_login(client, mongo_db):
    for url in ("/simulations/", "/simulations/sim:x/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_shot_matching_rule_is_a_setting(tmp_path, mongo_db, settings):
    settings.SIMULATIONS_SHOT_KEY_PATTERN = r"shot_(?P<shot_key>[A-Z]+-\d{8}-\d{6})"
    printed = extract(warpx_run(tmp_path / "scan" / "shot_LWFA-20261124-000007_a0-3"), "--dry-run")
    assert "shots LWFA-20261124-000007" in printed
    settings.SIMULATIONS_SHOT_KEY_PATTERN = ""
    assert "shots " not in extract(warpx_run(tmp_path / "LWFA-20261124-000008"), "--dry-run")


def test_a_run_names_its_shot_sheet(tmp_path, mongo_db, admin_client):
    from shotsheet.models import Sheet

    Sheet.objects.create(name="LWFA log", slug="lwfa", experiment="LWFA")
    with pytest.raises(CommandError, match="no shot sheet 'nope'"):
        extract(warpx_run(tmp_path / "w"), "--sheet", "nope")
    extract(tmp_path / "w", "--sheet", "lwfa")
    extract(tmp_path / "w")  # extracted again without --sheet: the sheet stays
    [run] = store.summaries()
    assert run["sheet"] == "lwfa"
    assert 'href="/sheets/lwfa/"' in admin_client.get(f"/simulations/{run['_id']}/").content.decode()
