"""Django settings for Trellis, read from the environment (see config/options.py).

The embedded default needs no outside service: SQLite in TRELLIS_DATA_DIR, the
in-process channel layer, and a Celery broker on the filesystem. DATABASE_URL and
REDIS_URL switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import dj_database_url

from config import forwarded, options

BASE_DIR = Path(__file__).resolve().parent.parent
_opts = options.load()

TESTING = "pytest" in sys.modules or "test" in sys.argv[1:2]

# --- Matrix ---------------------------------------------------------------------------
SERVER_NAME = _opts.get("server_name", "localhost:8008")
BIND = _opts.get("bind", options.DEFAULT_BIND)
DATA_DIR = options.data_dir(_opts)
PUBLIC_BASEURL = _opts.get("public_baseurl", f"http://{BIND}").rstrip("/") + "/"
REGISTRATION = _opts.get("registration", "open")
# The system user that sends server notices (Client-Server API, "Server Notices"), made
# when the first notice is sent.
SERVER_NOTICES_LOCALPART = _opts.get("server_notices_localpart", "notices")
# Seconds a web process keeps a session it read (accounts/session_cache.py); tests
# change users behind the models' backs, so there it is off unless a test turns it on.
SESSION_CACHE_S = 0.0 if TESTING else float(_opts.get("session_cache_s", "1"))
# Threads per web process answering Matrix requests to synchronous views (config/asgi.py).
TRELLIS_WEB_THREADS = int(_opts.get("web_threads", "8"))
if REGISTRATION not in options.REGISTRATION_MODES:
    raise options.ConfigError(
        f"TRELLIS_REGISTRATION must be one of {options.REGISTRATION_MODES}, not {REGISTRATION!r}"
    )
REGISTRATION_SHARED_SECRET = _opts.get("registration_shared_secret", "")
# Client-Server API, "Guest access": POST /register?kind=guest makes guest accounts.
# Off by default, as Synapse's allow_guest_access.
ALLOW_GUEST_ACCESS = options.as_bool(
    _opts.get("allow_guest_access", "off"), "TRELLIS_ALLOW_GUEST_ACCESS"
)
RATELIMIT_ENABLED = options.as_bool(_opts.get("ratelimit", "on"), "TRELLIS_RATELIMIT")
PRESENCE_ENABLED = options.as_bool(_opts.get("presence", "on"), "TRELLIS_PRESENCE")
# Lifetime of access tokens handed to clients that support refresh tokens.
ACCESS_TOKEN_LIFETIME_MS = int(_opts.get("access_token_lifetime_ms", str(60 * 60 * 1000)))
SIGNING_KEY_PATH = options.signing_key_path(_opts)
WELL_KNOWN_SERVER = _opts.get("federation_server_name_for_well_known", "")
# GET /.well-known/matrix/support: the administrator's contacts and a help page. Unset,
# the endpoint answers 404 (the spec: at least one of contacts or support_page).
SUPPORT_EMAIL = _opts.get("support_email", "")
SUPPORT_MXID = _opts.get("support_mxid", "")
SUPPORT_PAGE = _opts.get("support_page", "")
# Federation. Server name -> base URL, bypassing server discovery (and, with http://, TLS):
# for tests and private deployments only.
FEDERATION_URL_OVERRIDES = options.as_url_overrides(
    _opts.get("federation_url_overrides", ""), "TRELLIS_FEDERATION_URL_OVERRIDES"
)
# Servers asked for a server's keys (POST /_matrix/key/v2/query) when the server itself
# cannot be reached; none by default.
FEDERATION_KEY_NOTARIES = options.as_list(_opts.get("federation_key_notaries", ""))
# Other servers' addresses must be global unless in these CIDRs (overrides aside).
FEDERATION_IP_ALLOWLIST = options.as_networks(
    _opts.get("federation_ip_allowlist", ""), "TRELLIS_FEDERATION_IP_ALLOWLIST"
)
# Outbound TLS: the system's authorities plus these (PEM); verification off is for test
# set-ups only (federation/transport.py warns about it in every process).
FEDERATION_CA_FILE = options.federation_ca_file(_opts)
FEDERATION_VERIFY_TLS = options.as_bool(
    _opts.get("federation_verify_tls", "on"), "TRELLIS_FEDERATION_VERIFY_TLS"
)
FEDERATION_TIMEOUT_S = 10.0
FEDERATION_MAX_JSON_BYTES = 1024 * 1024
# (rate per second, burst) for each rate-limited action.
RATELIMITS = {
    "login": (0.5, 5),
    "login_failed": (0.2, 5),
    "register": (0.2, 5),
    "register_available": (1.0, 10),
    # POST .../requestToken: mails and SMS sent, per client address and per 3PID.
    "threepid_request_ip": (0.1, 10),
    "threepid_request_address": (1 / 60, 5),
    # Events sent by one user (PUT /send); operators override it per user.
    "message": (10.0, 200),
    # The identity service's requestToken: per client address, and per 3PID a token is
    # sent to (so nobody floods someone else's mailbox or phone).
    "identity_request_token": (0.2, 10),
    "identity_send_token": (1 / 60, 3),
}

# --- Django ---------------------------------------------------------------------------
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    if _opts.get("secret_key"):
        return _opts["secret_key"]
    path = DATA_DIR / "django_secret.key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


SECRET_KEY = _secret_key()
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "daphne",
    "config.apps.AdminConfig",  # django.contrib.admin with config.admin_site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Two-factor login for the admin portal (config/admin_mfa.py): allauth.mfa's TOTP and
    # recovery codes; allauth.account is its required base, its own views are not routed.
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "channels",
    "config",
    "streams",
    "accounts",
    "rooms",
    "sync",
    "federation",
    "e2ee",
    "presence",
    "keybackup",
    "media",
    "push",
    "voip",
    "identity",
    "operators",
    "webclient",
]

MIDDLEWARE = [
    "config.middleware.MatrixCorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
# In front of Matrix endpoints only this (config/asgi.py): they take bearer tokens, not
# cookies, and every middleware here is async.
MATRIX_MIDDLEWARE = ["config.middleware.MatrixCorsMiddleware"]
APPEND_SLASH = False

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

if _opts.get("database_url"):
    # No persistent connections: under ASGI every request runs in its own thread, so a
    # connection kept for reuse is never reused and never closed; under load they pile up
    # to max_connections ("too many clients"). Django's docs: "When using ASGI, persistent
    # connections should be disabled." Instead psycopg's pool lends each request a
    # connection and takes it back at the end, keeping a few open.
    DATABASES = {"default": dj_database_url.parse(_opts["database_url"], conn_max_age=0)}
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": int(_opts.get("db_pool_size", "16")),
        "timeout": 30,
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "config.sqlite",
            "NAME": DATA_DIR / "trellis.sqlite3",
            # Tests run on an in-memory database (Django's default for SQLite), said
            # outright so that pytest-xdist's workers keep it instead of deriving a
            # file name from NAME (pytest-django does that for engines it does not
            # recognise as SQLite).
            "TEST": {"NAME": ":memory:"},
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers queue on the
                # busy timeout instead of failing to upgrade a read lock.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                ),
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "accounts.hashers.TrellisArgon2PasswordHasher",
]
if TESTING:
    # Tests create many users; a fast hasher keeps the suite short. Argon2 stays the
    # production hasher and tests/accounts check it is the one configured there.
    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "accounts.hashers.TrellisArgon2PasswordHasher",
    ]

REDIS_URL = _opts.get("redis_url", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "trellis",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "trellis"},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "trellis",
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ---------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
else:
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport with atomic writes (config/broker.py).
    CELERY_BROKER_URL = "trellisfs://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TASK_ALWAYS_EAGER = TESTING

# --- Mail, SMS and third-party identifiers (accounts/services/mail.py, identity/) -------
# With no SMTP host, mails are written to the log (config/mail_backend.py), so the
# verification flows can be tried on a laptop; tests use Django's in-memory outbox.
SMTP_HOST = _opts.get("smtp_host", "")
SMTP_SECURITY = _opts.get("smtp_security", "none").strip().lower()
if SMTP_SECURITY not in options.SMTP_SECURITY_MODES:
    raise options.ConfigError(
        f"TRELLIS_SMTP_SECURITY must be one of {options.SMTP_SECURITY_MODES}, "
        f"not {SMTP_SECURITY!r}"
    )
if SMTP_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = SMTP_HOST
    EMAIL_PORT = options.as_positive_int(_opts.get("smtp_port", "25"), "TRELLIS_SMTP_PORT")
    EMAIL_HOST_USER = _opts.get("smtp_user", "")
    EMAIL_HOST_PASSWORD = _opts.get("smtp_password", "")
    EMAIL_USE_TLS = SMTP_SECURITY == "starttls"
    EMAIL_USE_SSL = SMTP_SECURITY == "tls"
    EMAIL_TIMEOUT = 30
else:
    EMAIL_BACKEND = "config.mail_backend.LogEmailBackend"
EMAIL_FROM = _opts.get("email_from", "") or f"Trellis <noreply@{SERVER_NAME.split(':')[0]}>"
DEFAULT_FROM_EMAIL = EMAIL_FROM
REGISTRATION_REQUIRES_EMAIL = options.as_bool(
    _opts.get("registration_requires_email", "off"), "TRELLIS_REGISTRATION_REQUIRES_EMAIL"
)
SMS_WEBHOOK_URL = _opts.get("sms_webhook_url", "")
IDENTITY_SERVICE_ENABLED = options.as_bool(
    _opts.get("identity_service", "on"), "TRELLIS_IDENTITY_SERVICE"
)
# The identity service's policies (GET /_matrix/identity/v2/terms), in the spec's shape:
# {policy id: {"version": ..., language: {"name": ..., "url": ...}}}. With none, no user
# has terms to accept.
IDENTITY_TERMS: dict[str, dict[str, object]] = {}
# Where the identity service keeps its long-term signing key (ed25519:0).
IDENTITY_SIGNING_KEY_PATH = DATA_DIR / "identity_signing.key"

# --- HTTP -----------------------------------------------------------------------------
MAX_REQUEST_BYTES = int(_opts.get("max_request_bytes", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# The HTTP edge (config/http_server.py): request line plus headers, in bytes; the time a
# request's head may take to arrive; the longest silence within a body or between requests.
HTTP_MAX_HEADER_BYTES = int(_opts.get("max_header_bytes", str(16 * 1024)))
HTTP_HEADER_TIMEOUT_S = float(_opts.get("http_header_timeout_s", "30"))
HTTP_IDLE_TIMEOUT_S = float(_opts.get("http_idle_timeout_s", "60"))
# Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (config/forwarded.py).
TRUSTED_PROXIES = forwarded.parse_networks(
    options.as_networks(_opts.get("trusted_proxies", ""), "TRELLIS_TRUSTED_PROXIES")
)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.AccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_PARSER_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["config.renderers.MatrixJSONRenderer"],
    "EXCEPTION_HANDLER": "config.exceptions.matrix_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # ?format= is a Matrix parameter (GET /state/{type}/{key}?format=event), not DRF's
    # renderer override, which answered it with a 404.
    "URL_FORMAT_OVERRIDE": None,
}

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"

# --- Media repository (media/) ----------------------------------------------------------
# Larger uploads get 413 M_TOO_LARGE; /media/config advertises it as m.upload.size.
MAX_UPLOAD_SIZE = int(_opts.get("max_upload_size", str(50 * 1024 * 1024)))
# Bytes of media one user may have stored (0: no quota); beyond it, 403 M_FORBIDDEN.
MEDIA_USER_QUOTA = int(_opts.get("media_user_quota", "0"))
# The deprecated unauthenticated /_matrix/media/v3/download|thumbnail serve only media
# uploaded while this was on (the spec's "freeze"; Synapse's enable_authenticated_media).
MEDIA_LEGACY_UNAUTHENTICATED = options.as_bool(
    _opts.get("media_legacy_unauthenticated", "off"), "TRELLIS_MEDIA_LEGACY_UNAUTHENTICATED"
)
URL_PREVIEWS_ENABLED = options.as_bool(_opts.get("url_previews", "on"), "TRELLIS_URL_PREVIEWS")
# CIDRs, comma-separated. Non-global addresses (private, loopback, link-local...) are
# always refused unless allow-listed; the deny list refuses more.
URL_PREVIEW_IP_ALLOWLIST = options.as_list(_opts.get("url_preview_ip_allowlist", ""))
URL_PREVIEW_IP_DENYLIST = options.as_list(_opts.get("url_preview_ip_denylist", ""))
URL_PREVIEW_MAX_BYTES = 10 * 1024 * 1024
URL_PREVIEW_TIMEOUT_S = 10.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Any Django storage backend, e.g. django-storages' "storages.backends.s3.S3Storage"
    # with its options as a JSON object in TRELLIS_MEDIA_STORAGE_OPTIONS.
    "media": {
        "BACKEND": _opts.get("media_storage", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": options.as_json_object(
            _opts.get("media_storage_options", ""),
            "TRELLIS_MEDIA_STORAGE_OPTIONS",
            default={"location": str(DATA_DIR / "media")},
        ),
    },
}

# --- The admin portal's second factor (config/admin_mfa.py) ----------------------------
# Operators log in with their localpart; no e-mail address is involved anywhere.
ACCOUNT_USER_MODEL_USERNAME_FIELD = "localpart"
ACCOUNT_USER_MODEL_EMAIL_FIELD = None
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
MFA_ADAPTER = "config.admin_mfa.TrellisMFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# The name authenticator apps show beside the code.
MFA_TOTP_ISSUER = f"Trellis {SERVER_NAME}"
MFA_ALLOW_UNVERIFIED_EMAIL = True
# A code of the previous or next 30 s is accepted too (a phone's clock drifts); each code
# is accepted once all the same.
MFA_TOTP_TOLERANCE = 1
if not RATELIMIT_ENABLED:
    ACCOUNT_RATE_LIMITS = False

# --- Push notifications (push/) ---------------------------------------------------------
# Push gateways (POST /pushers/set data.url) must be HTTPS on a global address; plain HTTP
# and private addresses only for gateways inside these CIDRs (private set-ups, tests).
PUSH_IP_ALLOWLIST = options.as_networks(
    _opts.get("push_ip_allowlist", ""), "TRELLIS_PUSH_IP_ALLOWLIST"
)
PUSH_TIMEOUT_S = 10.0
PUSH_MAX_RESPONSE_BYTES = 64 * 1024

# --- VoIP (voip/) -------------------------------------------------------------------------
# TURN servers handed to clients by GET /voip/turnServer, with credentials made from the
# secret they share with us (coturn's use-auth-secret); off unless both are given.
TURN_URIS = options.as_turn_uris(_opts.get("turn_uris", ""), "TRELLIS_TURN_URIS")
TURN_SHARED_SECRET = _opts.get("turn_shared_secret", "")
TURN_TTL_S = options.as_positive_int(_opts.get("turn_ttl_s", "86400"), "TRELLIS_TURN_TTL_S")
if bool(TURN_URIS) != bool(TURN_SHARED_SECRET):
    raise options.ConfigError(
        "TRELLIS_TURN_URIS and TRELLIS_TURN_SHARED_SECRET go together: set both or neither"
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # No log line shows a query string's secrets (access_token=...), config/redact.py.
    "filters": {"redact": {"()": "config.redact.RedactQuerySecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": _opts.get("log_level", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
