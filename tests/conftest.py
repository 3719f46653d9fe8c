"""Fixtures over the real services started by scripts/services.py (or named by env vars)."""

import uuid

import pytest
from django.conf import settings
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from labbook import mongo


@pytest.fixture(scope="session", autouse=True)
def mongo_test_database():
    """This run's MongoDB database, dropped when the run ends."""
    db = mongo.database()
    db.client.admin.command("ping")
    yield db
    db.client.drop_database(db.name)


@pytest.fixture
def mongo_db(mongo_test_database):
    """The test database, emptied after the test so tests never see each other's data."""
    yield mongo_test_database
    for name in mongo_test_database.list_collection_names():
        mongo_test_database.drop_collection(name)


@pytest.fixture(scope="session")
def kafka_admin():
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, request_timeout_ms=10000)
    yield admin
    admin.close()


@pytest.fixture
def kafka_topic(kafka_admin, request):
    """A fresh topic (3 partitions) for one test, deleted afterwards."""
    name = f"test.{request.node.name[:40]}.{uuid.uuid4().hex[:8]}".replace("[", "_").replace("]", "_")
    kafka_admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    yield name
    try:
        kafka_admin.delete_topics([name])
    except Exception:  # the broker may be gone in a fault test; the topic dies with it
        pass
