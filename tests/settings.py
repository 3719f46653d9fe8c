"""Settings for the test suite: the real services, with a MongoDB database of this run's own."""

import os
import uuid

os.environ.setdefault("DJANGO_DEBUG", "1")

from labbook.settings import *  # noqa: E402,F403

# Each test run gets its own MongoDB database; tests/conftest.py drops it afterwards.
MONGODB_DB = f"labbook_test_{uuid.uuid4().hex[:12]}"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
SECURE_SSL_REDIRECT = False
SHOTSHEET_WARM_TABLES = False  # tests read tables when they ask for them
# ...and its own channel-layer namespace, so a relay or browser of a running system never
# reaches the tests' consumers (and the other way round).
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-test-{MONGODB_DB[-12:]}"  # noqa: F405
# A file, not memory, for the SQLite test database: the browser tests' live server runs in a
# process of its own and must see the same data.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test_{MONGODB_DB}.sqlite3")}  # noqa: F405
