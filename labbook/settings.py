"""labbook settings, read from environment variables with safe local defaults.

Production differences are switched by the environment (DJANGO_DEBUG=0 plus a real
DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS), never by a second settings tree.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("LABBOOK_DATA_DIR", BASE_DIR / "data"))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "insecure-local-development-key-only-for-debug"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "crispy_forms",
    "crispy_bootstrap5",
    "csp",
    "axes",
    "adminsortable2",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files for the API docs page, served here (no CDN)
    "core",
    "shotsheet",
    "relay",
    "watcher",
    "simulations",
    "api",
    "catalogue",
]

MIDDLEWARE = [
    "core.metrics.RequestLatencyMiddleware",  # first: times everything the others do too
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns its lock-out into the response
]

ROOT_URLCONF = "labbook.urls"
ASGI_APPLICATION = "labbook.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "labbook" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Django's relational database: users, permissions, admin-edited configuration ---
# SQLite in WAL mode by default, so daphne, relay and watcher processes share it safely.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{DATA_DIR / 'labbook.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- MongoDB: the data (entries, schema snapshots, ingested events, dead letters) ---
MONGODB_URI = os.environ.get("MONGODB_URI", f"mongodb://127.0.0.1:{os.environ.get('LABBOOK_MONGO_PORT', '27017')}")
MONGODB_DB = os.environ.get("MONGODB_DB", "labbook")
# How the watcher finds events by shot and time (watcher/indexes): auto | native | handmade.
LABBOOK_INDEX_STRATEGY = os.environ.get("LABBOOK_INDEX_STRATEGY", "auto")

# --- Kafka and the Channels layer ---
KAFKA_BOOTSTRAP_SERVERS = os.environ.get(
    "KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{os.environ.get('LABBOOK_KAFKA_PORT', '9092')}"
)
REDIS_URL = os.environ.get("REDIS_URL", f"redis://127.0.0.1:{os.environ.get('LABBOOK_REDIS_PORT', '6379')}/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [REDIS_URL],
            # Browsers get throttled streams; the default capacity (100) would drop
            # messages during bursts before the throttling had a chance to work.
            "capacity": 1000,
            "expiry": 30,
        },
    }
}

# --- Auth, sessions, security ---
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): after LABBOOK_LOGIN_FAILURE_LIMIT wrong passwords for one account
# from one address, that pair is locked out for LABBOOK_LOGIN_COOLOFF_MINUTES (each further attempt
# starts the time again), the right password included. Per account *and* address, so a stranger
# cannot lock the lab's accounts for everyone; a success resets the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LABBOOK_LOGIN_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LABBOOK_LOGIN_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A wrong password during the lock-out does not start it again: else anyone could keep an account
# (admin) locked for good by trying once every 15 minutes.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "labbook.lockout.locked_out"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

SECURE_HTTPS = env_bool("DJANGO_SECURE_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
SECURE_SSL_REDIRECT = SECURE_HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HTTPS
SECURE_HSTS_PRELOAD = SECURE_HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): scripts, styles and connections only from this site, so an
# injected <script> or on* attribute does not run. The templates keep no inline code (tests/test_csp.py);
# Bootstrap's CSS draws its icons from data: URLs; websockets are 'self' too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("LABBOOK_TIME_ZONE", "Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "labbook" / "static"]
# Bootstrap, the plotting library and the grid (Tabulator) come from npm (node_modules/, never committed).
for _npm_dist in ("bootstrap/dist", "uplot/dist", "tabulator-tables/dist"):
    if (BASE_DIR / "node_modules" / _npm_dist).is_dir():
        STATICFILES_DIRS.append((_npm_dist.split("/")[0], BASE_DIR / "node_modules" / _npm_dist))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"forbidden_in_one_line": {"()": "core.logfilters.ForbiddenInOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LABBOOK_LOG_LEVEL", "INFO")},
    "loggers": {
        "kafka": {"level": "WARNING"},
        "pymongo": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},  # not a line for every request (the catalogue sends ~1,000/s)
        "axes": {"level": "WARNING"},  # lock-outs; not a line for every login
        "django.request": {"filters": ["forbidden_in_one_line"]},
    },
}

# --- shotsheet ---
# The web process reads the active sheets' tables when it starts, not at their first page view
# (a 100,000-entry sheet takes seconds to read).
SHOTSHEET_WARM_TABLES = env_bool("SHOTSHEET_WARM_TABLES", True)
# Imports of legacy shot logs: an upload is untrusted, so what is read of it is bounded.
SHOTSHEET_IMPORT_MAX_BYTES = int(os.environ.get("SHOTSHEET_IMPORT_MAX_BYTES", 5_000_000))  # web upload
SHOTSHEET_IMPORT_MAX_UNPACKED_BYTES = int(os.environ.get("SHOTSHEET_IMPORT_MAX_UNPACKED_BYTES", 10_000_000))  # XLSX
SHOTSHEET_IMPORT_MAX_ROWS = int(os.environ.get("SHOTSHEET_IMPORT_MAX_ROWS", 20_000))
SHOTSHEET_IMPORT_MAX_COLUMNS = int(os.environ.get("SHOTSHEET_IMPORT_MAX_COLUMNS", 200))
SHOTSHEET_IMPORT_MAX_CELL_CHARS = int(os.environ.get("SHOTSHEET_IMPORT_MAX_CELL_CHARS", 10_000))
# An upload waits here (random name) between the preview and the import, at most this long.
SHOTSHEET_IMPORT_DIR = Path(os.environ.get("SHOTSHEET_IMPORT_DIR", DATA_DIR / "imports"))
SHOTSHEET_IMPORT_KEEP_SECONDS = int(os.environ.get("SHOTSHEET_IMPORT_KEEP_SECONDS", 3600))

# --- api: the read API (Django REST framework, OpenAPI by drf-spectacular) ---
API_PAGE_SIZE = int(os.environ.get("API_PAGE_SIZE", 100))  # items per page unless page_size says
API_MAX_PAGE_SIZE = int(os.environ.get("API_MAX_PAGE_SIZE", 10_000))  # a larger page_size is a 400
API_MAX_TIME_RANGE_DAYS = float(os.environ.get("API_MAX_TIME_RANGE_DAYS", 366))  # since..until at most
API_REQUESTS_PER_MINUTE = int(os.environ.get("API_REQUESTS_PER_MINUTE", 600))  # per token (or user); then 429
API_TIMESERIES_MAX_DAYS = float(os.environ.get("API_TIMESERIES_MAX_DAYS", 31))  # a time series' since..until at most
API_TIMESERIES_MAX_EVENTS = int(os.environ.get("API_TIMESERIES_MAX_EVENTS", 20_000))  # events read per request
API_SHOT_JOIN_MAX_EVENTS = int(os.environ.get("API_SHOT_JOIN_MAX_EVENTS", 1000))  # events of one shot; more: truncated
API_SHOT_JOIN_MAX_ENTRIES = int(os.environ.get("API_SHOT_JOIN_MAX_ENTRIES", 1000))  # entries of a shot; more: truncated
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.BearerTokenAuthentication",  # first: its 401 names the Bearer scheme
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["api.renderers.JSONRenderer", "api.renderers.CSVRenderer"],
    "DEFAULT_PARSER_CLASSES": [],  # read-only: no request bodies
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "api.renderers.Negotiation",
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.PerTokenThrottle"],
    "EXCEPTION_HANDLER": "api.exceptions.handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "labbook read API",
    "DESCRIPTION": "Sheets, entries, shots and events, read-only. Authorization: Bearer <token> (from /api/tokens/).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- relay ---
RELAY_EXPERIMENT = os.environ.get("RELAY_EXPERIMENT", "DEMO")
# Used when no relay input is enabled in the admin: the simulated laser's default endpoint.
RELAY_DEFAULT_INPUT = {
    "endpoint": os.environ.get("RELAY_LASER_ENDPOINT", "tcp://127.0.0.1:5555"),
    "mode": "SUB",
    "topics": "",
    "parser": "json",
    "source": "laser",
}
RELAY_PUB_ENDPOINT = os.environ.get("RELAY_PUB_ENDPOINT", "tcp://127.0.0.1:5556")
RELAY_SNAPSHOT_ENDPOINT = os.environ.get("RELAY_SNAPSHOT_ENDPOINT", "tcp://127.0.0.1:5557")
RELAY_KAFKA_TOPIC = os.environ.get("RELAY_KAFKA_TOPIC", "labbook.shots")
RELAY_LOG_DIR = Path(os.environ.get("RELAY_LOG_DIR", DATA_DIR / "relay-log"))
# "interval": flush every line, fdatasync at most every RELAY_FSYNC_SECONDS (group commit);
# "always": fdatasync every line; "never": leave it to the OS.
RELAY_LOG_FSYNC = os.environ.get("RELAY_LOG_FSYNC", "interval")
RELAY_FSYNC_SECONDS = float(os.environ.get("RELAY_FSYNC_SECONDS", "0.01"))
RELAY_HEARTBEAT_SECONDS = float(os.environ.get("RELAY_HEARTBEAT_SECONDS", "1.0"))
RELAY_METRICS_PORT = int(os.environ.get("RELAY_METRICS_PORT", 9101))  # Prometheus metrics on 127.0.0.1; 0: none

# --- watcher ---
WATCHER_GROUP_ID = os.environ.get("WATCHER_GROUP_ID", "labbook-watcher")
WATCHER_BATCH_SIZE = int(os.environ.get("WATCHER_BATCH_SIZE", 2000))  # records per poll and MongoDB write
WATCHER_ROUTE_REFRESH_SECONDS = float(os.environ.get("WATCHER_ROUTE_REFRESH_SECONDS", 2))  # route edits apply this fast
# Prometheus metrics of a watch process on 127.0.0.1 (0: none); several watch processes on one
# machine each need their own (`manage.py watch --metrics-port`).
WATCHER_METRICS_PORT = int(os.environ.get("WATCHER_METRICS_PORT", 9102))

# --- metrics ---
# Who may read the web process's /metrics without logging in (networks; staff users may anywhere).
LABBOOK_METRICS_ALLOWED_ADDRESSES = [
    network.strip()
    for network in os.environ.get("LABBOOK_METRICS_ALLOWED_ADDRESSES", "127.0.0.1/32,::1/128").split(",")
    if network.strip()
]

# --- catalogue (SciCat) ---
CATALOGUE_BATCH_SIZE = int(os.environ.get("CATALOGUE_BATCH_SIZE", 100))  # jobs read from the outbox at once
# Jobs (of different entries) in flight at once, and reads of the change log ahead of the scan:
# a real SciCat answers in 10-50 ms, so a sequential sync would wait on it most of the time.
CATALOGUE_CONCURRENCY = max(1, int(os.environ.get("CATALOGUE_CONCURRENCY", 4)))
CATALOGUE_POLL_SECONDS = float(os.environ.get("CATALOGUE_POLL_SECONDS", 1))  # new entries are seen this fast
# catalogue_sync keeps the outbox's pending jobs in memory and reads it whole again this often (and
# when another process, the web page's "Queue again" or "register now", says it changed it)
CATALOGUE_OUTBOX_REFRESH_SECONDS = float(os.environ.get("CATALOGUE_OUTBOX_REFRESH_SECONDS", 60))
CATALOGUE_RETRY_BASE_SECONDS = float(os.environ.get("CATALOGUE_RETRY_BASE_SECONDS", 1))  # first retry, then doubled
CATALOGUE_RETRY_MAX_SECONDS = float(os.environ.get("CATALOGUE_RETRY_MAX_SECONDS", 300))
# a dataset is sent this long after its shot (or its entry's save): the DAQ's files and events are in by then
CATALOGUE_SETTLE_SECONDS = float(os.environ.get("CATALOGUE_SETTLE_SECONDS", 30))
# every entry of the ruled sheets compared with the datasets recorded this often (0: never), so an
# entry whose change was never logged still reaches SciCat; also once when catalogue_sync starts
CATALOGUE_RECONCILE_SECONDS = float(os.environ.get("CATALOGUE_RECONCILE_SECONDS", 3600))
# a sheet this many changes behind (and a quarter of its change log) is read whole, not change by change
CATALOGUE_CATCH_UP_CHANGES = int(os.environ.get("CATALOGUE_CATCH_UP_CHANGES", 500))
CATALOGUE_MAX_LISTED_FILES = int(os.environ.get("CATALOGUE_MAX_LISTED_FILES", 100_000))  # a DAQ folder listed, at most
# a dataset whose DAQ profile lists a folder (list_files) is checked for files written since, this
# long after it was registered (comma-separated seconds; empty: never); events that name files
# announce themselves (the watcher's file log) and need no follow-up
CATALOGUE_FOLLOW_UP_SECONDS = [
    float(seconds) for seconds in os.environ.get("CATALOGUE_FOLLOW_UP_SECONDS", "60,600").split(",") if seconds.strip()
]

# --- simulations ---
# Shot keys a simulation run's folder path names (a regular expression; its `shot_key` group if it
# has one); only what reads as a shot key counts. Empty: runs link to shots only through --shots.
SIMULATIONS_SHOT_KEY_PATTERN = os.environ.get("SIMULATIONS_SHOT_KEY_PATTERN", r"[A-Za-z0-9]+(?:-r\d+)?-\d{8}-\d+")
