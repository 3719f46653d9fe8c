"""Against a real SciCat backend, when one is named: SCICAT_URL (its API root, e.g.
http://localhost:3000/api), SCICAT_USERNAME and SCICAT_PASSWORD of a functional account allowed
to create datasets with their own pid (CREATE_DATASET_WITH_PID_GROUPS), and optionally
SCICAT_OWNER_GROUP (default: ingestor). Skipped otherwise: no registry we reach ships the backend."""

import os
import time
import uuid

import pytest

from catalogue.builder import dataset_pid
from catalogue.models import Rule
from catalogue.services import Sync, client_for

from .conftest import make_server, make_sheet

pytestmark = pytest.mark.skipif(
    not (os.environ.get("SCICAT_URL") and os.environ.get("SCICAT_USERNAME") and os.environ.get("SCICAT_PASSWORD")),
    reason="no real SciCat: set SCICAT_URL, SCICAT_USERNAME and SCICAT_PASSWORD",
)


def test_entry_registered_then_patched_on_a_real_scicat(db, mongo_db):
    from shotsheet import schema
    from shotsheet.entries import create_entry, update_entry

    server = make_server(os.environ["SCICAT_URL"], os.environ.get("SCICAT_API_VERSION", "v4"))
    server.owner_group = os.environ.get("SCICAT_OWNER_GROUP", "ingestor")
    server.pid_prefix = os.environ.get("SCICAT_PID_PREFIX", "")
    server.save()
    sheet = make_sheet(f"real{uuid.uuid4().hex[:6]}")
    Rule.objects.create(sheet=sheet, server=server, keywords="labbook-test")
    entry = create_entry(sheet, schema.save_version(sheet), {"energy": 1.25}, author="ci", shot_key=None)
    sync = Sync()
    sync.run_once()
    assert sync.stats.failed == 0 and sync.stats.created + sync.stats.existed == 1
    pid = dataset_pid(entry["_id"], server.pid_prefix)
    client = client_for(server)
    dataset = client.get_dataset(pid)
    assert dataset["scientificMetadata"]["energy"]["value"] == 1.25
    assert dataset["scientificMetadata"]["energy"]["unit"] == "J"
    update_entry(sheet, entry, 1, {"energy": 2.5}, author="ci", comment="", shot_key=None)
    time.sleep(0.1)
    sync.run_once()
    assert sync.stats.patched == 1
    assert client.get_dataset(pid)["scientificMetadata"]["energy"]["value"] == 2.5
    sync.close()
    client.close()
