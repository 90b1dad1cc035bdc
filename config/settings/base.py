"""Settings shared by every environment; everything that differs is read from the environment.

SQLite is the embedded default (demo); DATABASE_URL switches to PostgreSQL (psycopg 3).
Celery and the cache use Redis when REDIS_URL is set; without it tasks run eagerly in-process
and the cache is per process.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from prudencial.domain.market import DEFAULT_CADENCE_BY_CLASS

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("PRUDENCIAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean from the environment ("1", "true", "yes", "on" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "import_export",
    "simple_history",
    "django_celery_beat",
    "axes",
    "pgtrigger",  # append-only submissions and verdicts: UPDATE/DELETE refused by triggers
    "prudencial",
    "prudencial.submissions",
    "prudencial.accounts",  # sign-in: CCEE's SSO (OpenID Connect), local accounts by e-mail
    "django_otp",
    "django_otp.plugins.otp_totp",
    "prudencial.access",  # expiring tokens, the admin's second factor, the access audit
    "prudencial.closing",  # the weekly closing, signed results, agents' decisions, publication
    "prudencial.alerts",  # cases opened by results beyond the week's bands
    "seal",
    "enclave_bridge",
]

MIDDLEWARE = [
    # First: refuses oversized API bodies before anything reads them, and sees every API answer.
    "prudencial.middleware.APIBoundaryMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "prudencial.middleware.DefaultLanguageMiddleware",
    "prudencial.middleware.CommonMiddleware",  # Django's, without APPEND_SLASH under /api/
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the admin's second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "prudencial.accounts.oidc.SessionRefresh",  # renews an SSO session at the provider
    "prudencial.accounts.middleware.ConfirmedEmailMiddleware",  # unconfirmed: the account page only
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",  # the admin login's lockout page (prudencial.api.lockout)
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "prudencial.User"
AUTHENTICATION_BACKENDS = [
    # First: a locked-out login is refused before any password is checked (django-axes).
    "prudencial.api.lockout.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
    "prudencial.accounts.oidc.CpfOIDCBackend",  # CCEE's SSO, the user matched by CPF
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

# pt-BR by default, English available; windows and deadlines are Brasília time, stored in UTC.
LANGUAGE_CODE = "pt-br"
LANGUAGES = [("pt-br", _("Português (Brasil)")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "America/Sao_Paulo"
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = True
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Django REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first so that an anonymous request gets 401 with WWW-Authenticate, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "prudencial.access.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "prudencial.accounts.permissions.EmailConfirmed",  # agents' users: a confirmed e-mail
    ],
    "DEFAULT_PAGINATION_CLASS": "prudencial.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_PARSER_CLASSES": [
        "prudencial.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "prudencial.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth": os.environ.get("API_AUTH_THROTTLE", "20/minute"),
        "attestation": os.environ.get("API_ATTESTATION_THROTTLE", "30/minute"),
        # Per user: envelopes POSTed (one agent's portfolio or counterparties) and batches.
        # Defaults well above the ingestion benchmark (bench/ingest_bench.py: 300/s over 60
        # users, 5/s a user) and a batch's normal use (a few a week).
        "submissions": os.environ.get("API_SUBMISSIONS_THROTTLE", "6000/minute"),
        "batches": os.environ.get("API_BATCHES_THROTTLE", "30/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Plataforma de Monitoramento Prudencial — API",
    "DESCRIPTION": (
        "API for CCEE market agents and staff: registry, weekly reporting events and CCEE risk "
        "parameters. Confidential payloads are JWE envelopes that only the enclave can open."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Public names for enums that share a field name ("status") across components.
    "ENUM_NAME_OVERRIDES": {"WeekStatusEnum": "prudencial.models.weeks.WeekStatus"},
    # Swagger UI and ReDoc served from our own static files (pinned by the sidecar package), not
    # from a CDN: the docs work on a closed network and run no unpinned third-party script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The error answers (400, 401, 403, 404, 409, 411, 413, 414, 415, 429) on every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "prudencial.api.schema.add_error_responses",
    ],
}

# --- Limits on what a client sends (docs/api.md § Errors and limits) -------------------------
# A request body under /api/ (the middleware checks Content-Length; Django checks what it reads).
PRUDENCIAL_API_MAX_BODY_BYTES = int(os.environ.get("API_MAX_BODY_BYTES", str(2_621_440)))  # 2.5 MiB
DATA_UPLOAD_MAX_MEMORY_SIZE = PRUDENCIAL_API_MAX_BODY_BYTES
PRUDENCIAL_API_MAX_JSON_DEPTH = int(os.environ.get("API_MAX_JSON_DEPTH", "32"))
PRUDENCIAL_API_MAX_LIMIT = int(os.environ.get("API_MAX_PAGE_LIMIT", "500"))  # ?limit= of a list

# --- Submissions (prudencial.submissions; docs/formats.md) -----------------------------------
# One agent's envelope (the JWE text) at most this many bytes; within the API's body limit.
PRUDENCIAL_SUBMISSION_MAX_BYTES = int(
    os.environ.get("SUBMISSION_MAX_BYTES", str(2_097_152))
)  # 2 MiB
# A batch's envelope (JSON or XLSX covering many agents): at most 7 MiB, so that it fits the
# enclave's 8 MiB request frame with its args; its route alone accepts a body of up to
# PRUDENCIAL_BATCH_MAX_BODY_BYTES (prudencial.middleware; every other route keeps the default).
PRUDENCIAL_BATCH_MAX_BYTES = int(os.environ.get("BATCH_MAX_BYTES", str(7 * 1024 * 1024)))
PRUDENCIAL_BATCH_MAX_BODY_BYTES = PRUDENCIAL_BATCH_MAX_BYTES + 256 * 1024  # + the agents list
PRUDENCIAL_BATCH_MAX_AGENTS = int(os.environ.get("BATCH_MAX_AGENTS", "2000"))
# Batches one user may send for one week (refused with 429 beyond it); documented default 50.
PRUDENCIAL_BATCH_MAX_PER_WEEK = int(os.environ.get("BATCH_MAX_PER_WEEK", "50"))
# Times a submission's validation or a batch's split is sent to the enclave before it is
# given up (an error verdict / the batch rejected, asking to send the envelope again).
PRUDENCIAL_SUBMISSION_MAX_ATTEMPTS = int(os.environ.get("SUBMISSION_MAX_ATTEMPTS", "5"))
# The week of its month (the code's sequence) in which monthly reporters report; documented
# default 1, the month's first event (prudencial.domain.calendar.has_cadence_event).
PRUDENCIAL_MONTHLY_EVENT_SEQUENCE = int(os.environ.get("MONTHLY_EVENT_SEQUENCE", "1"))

# --- Client addresses behind proxies (prudencial.api.addresses) ------------------------------
# Networks of our own reverse proxies / load balancers, comma-separated CIDR. X-Forwarded-For is
# believed only when the direct peer is one of them. Empty (the default): the peer is the client.
PRUDENCIAL_TRUSTED_PROXIES = env_list("DJANGO_TRUSTED_PROXIES", [])
for _network in PRUDENCIAL_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"DJANGO_TRUSTED_PROXIES: {_network!r} is not a network in CIDR notation "
            "(e.g. 10.0.0.0/8 or 192.0.2.7)."
        ) from None

# --- Cache: throttle counters; Redis when REDIS_URL is set, so every process shares them ------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "prudencial",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Login lockout (django-axes): the token endpoint and the admin login ---------------------
# Failures are counted per username and, separately, per client address; AXES_FAILURE_LIMIT of
# either within the cool-off locks it for the cool-off (each attempt while locked restarts it).
# Counters live in the database (axes' default handler), shared by every process.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_CLIENT_IP_CALLABLE = "prudencial.api.addresses.client_address"
AXES_LOCKOUT_CALLABLE = "prudencial.api.lockout.lockout_response"
AXES_USERNAME_FORM_FIELD = "username"

# --- Access control (docs/access.md) --------------------------------------------------------
# API tokens expire this long after creation; a person may hold this many in force at once.
ACCESS_TOKEN_LIFETIME = timedelta(days=int(os.environ.get("ACCESS_TOKEN_LIFETIME_DAYS", "30")))
ACCESS_TOKEN_LIMIT_PER_USER = int(os.environ.get("ACCESS_TOKEN_LIMIT_PER_USER", "20"))
# CCEE staff enter the admin with password and a TOTP code (django-otp); never off in production.
ACCESS_ADMIN_REQUIRE_SECOND_FACTOR = env_bool("ACCESS_ADMIN_REQUIRE_SECOND_FACTOR", True)
ACCESS_TOTP_ENROLMENT_MAX_AGE = timedelta(
    hours=int(os.environ.get("ACCESS_TOTP_ENROLMENT_HOURS", "24"))
)
OTP_TOTP_ISSUER = "CCEE Monitoramento Prudencial"
# Database roles of the application (comma-separated) when they differ from the role that runs
# migrations: the audit migration leaves them only INSERT and SELECT on the audit table.
ACCESS_AUDIT_APP_DB_ROLES = env_list("ACCESS_AUDIT_APP_DB_ROLES", [])

# --- Sign-in (prudencial.accounts; docs/accounts.md) ----------------------------------------
# CCEE's single sign-on (mozilla-django-oidc): on when the client id and the authorization
# endpoint are set. Authorization code with PKCE (S256) and a nonce; RS256 ID tokens checked
# against the provider's JWKS; the user is the one whose CPF is the OIDC_CPF_CLAIM claim.
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_RP_CLIENT_SECRET", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_OP_LOGOUT_ENDPOINT = os.environ.get("OIDC_OP_LOGOUT_ENDPOINT", "")  # end_session_endpoint
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = os.environ.get("OIDC_RP_SCOPES", "openid email profile")
OIDC_CPF_CLAIM = os.environ.get("OIDC_CPF_CLAIM", "cpf")
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USER", True)  # an unknown CPF: a user with no agents
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the logout at the provider
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = int(os.environ.get("OIDC_RENEW_SECONDS", "900"))
OIDC_TIMEOUT = int(os.environ.get("OIDC_TIMEOUT", "10"))
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc-callback"
OIDC_OP_LOGOUT_URL_METHOD = "prudencial.accounts.oidc.provider_logout_url"
# Local accounts (sign in, create/reset by e-mail, forgotten login): unset means "when SSO is
# not configured"; 1/0 forces them on/off.
ACCOUNTS_LOCAL_LOGIN = (
    env_bool("ACCOUNTS_LOCAL_LOGIN") if os.environ.get("ACCOUNTS_LOCAL_LOGIN") else None
)
# Agents' users reach nothing but the account page until their e-mail is confirmed.
ACCOUNTS_REQUIRE_CONFIRMED_EMAIL = env_bool("ACCOUNTS_REQUIRE_CONFIRMED_EMAIL", True)
# The links' base URL (e.g. https://prudencial.ccee.org.br); empty: the request's own host.
ACCOUNTS_SITE_URL = os.environ.get("ACCOUNTS_SITE_URL", "")
# Create/reset and confirmation links expire after this (Django's token generator).
PASSWORD_RESET_TIMEOUT = 60 * int(os.environ.get("ACCOUNTS_LINK_MINUTES", "60"))
# E-mail: the console in development and the demo, locmem in tests (pytest-django), SMTP in
# production (config/settings/production.py reads EMAIL_* from the environment).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get(
    "DEFAULT_FROM_EMAIL", "Monitoramento Prudencial <nao-responda@localhost>"
)

# --- django-guardian -------------------------------------------------------------------------
ANONYMOUS_USER_NAME = None  # no anonymous object permissions: anonymous never sees an agent
GUARDIAN_RAISE_403 = False

# --- django-import-export --------------------------------------------------------------------
IMPORT_EXPORT_USE_TRANSACTIONS = True
IMPORT_EXPORT_SKIP_ADMIN_LOG = False
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "change"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "view"

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
# Tasks must finish well inside Redis' visibility timeout, or acks_late redelivers them.
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60 * 60}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The default beat entries, installed into django-celery-beat's tables by `manage.py
# sync_schedules`, where staff edit them in the admin. Deliberately not CELERY_BEAT_SCHEDULE:
# beat's DatabaseScheduler writes that one over the tables every time it starts, undoing staff edits.
PRUDENCIAL_BEAT_SCHEDULE = {
    "open-due-weeks": {
        "task": "prudencial.tasks.open_due_weeks",
        "schedule": crontab(minute="*/5"),
    },
    "close-due-weeks": {
        "task": "prudencial.tasks.close_due_weeks",
        "schedule": crontab(minute="*/5"),
    },
    "expire-representations": {
        "task": "prudencial.tasks.expire_representations",
        "schedule": crontab(minute="*/15"),
    },
    # Validations and batch splits still waiting (a worker or the enclave was down) are sent again.
    "dispatch-pending-submissions": {
        "task": "submissions.dispatch_pending",
        "schedule": crontab(minute="*/10"),
    },
    # Weekly closing (docs/closing.md): start the closing of every week past its deadline (closing
    # it first), resume stalled closings, publish computed weeks at deadline + the delay.
    "start-due-closings": {
        "task": "closing.start_due_closings",
        "schedule": crontab(minute="*/5"),
    },
    "resume-stalled-closings": {
        "task": "closing.resume_stalled_closings",
        "schedule": crontab(minute="*"),
    },
    "publish-due-weeks": {
        "task": "closing.publish_due_weeks",
        "schedule": crontab(minute="*/15"),
    },
}

# --- The week's trade network upload (prudencial.closing.trade_network) ----------------------
# The JWE text at most this many characters: the enclave opens envelopes of at most 8 Mi
# characters (6 MiB of plaintext, enclave_bridge/enclave/envelope.py), about 40,000 contracts;
# a larger limit here would only move the refusal from the API to the enclave.
CLOSING_TRADE_NETWORK_MAX_BYTES = int(
    os.environ.get("CLOSING_TRADE_NETWORK_MAX_BYTES", str(8 * 1024 * 1024))
)
CLOSING_TRADE_NETWORK_MAX_BODY_BYTES = CLOSING_TRADE_NETWORK_MAX_BYTES + 64 * 1024

# --- Weekly closing (docs/closing.md) ----------------------------------------------------------
# Every enclave process the closing fans out over (comma-separated; one per parent instance in
# production); the chunks go round-robin, and a chunk fails over to the next on unavailability.
ENCLAVE_ADDRESSES = env_list("ENCLAVE_ADDRESSES", [])  # empty: [ENCLAVE_ADDRESS]
# Agents per enclave request (one Celery task each).
CLOSING_CHUNK_AGENTS = int(os.environ.get("CLOSING_CHUNK_AGENTS", "500"))
# Past this long without progress while the enclave cannot answer, the closing is "delayed",
# staff are told (closing_delayed) and no figure is invented.
CLOSING_ENCLAVE_DELAY_MINUTES = int(os.environ.get("CLOSING_ENCLAVE_DELAY_MINUTES", "60"))
# The network model's options shipped with each closing (the enclave's NETWORK_KEYS).
CLOSING_NETWORK_OPTIONS = {
    "scenarios": int(os.environ.get("CLOSING_NETWORK_SCENARIOS", "5000")),
    "seed": int(os.environ.get("CLOSING_NETWORK_SEED", "20230301")),
    "horizon_buckets": 3,
}
# A computed week is published (beat) at its deadline + this many hours.
CLOSING_PUBLICATION_DELAY_HOURS = int(os.environ.get("CLOSING_PUBLICATION_DELAY_HOURS", "48"))
# A closing whose state has not moved for this long is resumed by beat (resume_stalled_closings).
CLOSING_STALL_SECONDS = int(os.environ.get("CLOSING_STALL_SECONDS", "300"))

# --- Domain parameters (documented in docs/architecture.md) ---------------------------------
# Reporting cadence by agent class. The CCEE presentation shows a weekly event for traders and
# generators ("Agente comercializador ou gerador"); the rest report monthly; distributors are exempt.
# Override per deployment by assigning another table here; the default lives in prudencial.domain.
PRUDENCIAL_CADENCE_BY_CLASS = dict(DEFAULT_CADENCE_BY_CLASS)  # the domain package's default table
# Object permissions granted by each kind of representation (REN ANEEL 1.072/2023 leaves this to
# the platform). Codenames refer to prudencial.Agent permissions.
PRUDENCIAL_PERMISSIONS_BY_ROLE = {
    "controls": ["view_agent", "submit_agent_data", "send_leverage_result"],
    "monitoring": ["view_agent", "submit_agent_data", "send_leverage_result"],
    "represents": ["view_agent", "submit_agent_data"],
}

# --- Alerts and cases (docs/alerts.md) -------------------------------------------------------
# Who on CCEE's side is e-mailed when a case opens or a closing is delayed: these addresses
# (comma-separated) when set, otherwise the active staff members of ALERTS_STAFF_GROUP.
ALERTS_STAFF_EMAILS = env_list("ALERTS_STAFF_EMAILS", [])
ALERTS_STAFF_GROUP = os.environ.get("ALERTS_STAFF_GROUP", "Equipe CCEE")

# --- Enclave (docs/enclave.md, docs/attestation.md) ------------------------------------------
ENCLAVE_DIR = Path(os.environ.get("ENCLAVE_DIR", VAR_DIR / "enclave"))
# unix:PATH | tcp:127.0.0.1:PORT | vsock:CID:PORT
ENCLAVE_ADDRESS = os.environ.get("ENCLAVE_ADDRESS", f"unix:{ENCLAVE_DIR / 'enclave.sock'}")
ENCLAVE_TIMEOUT = float(os.environ.get("ENCLAVE_TIMEOUT", "30"))
ENCLAVE_RETRIES = int(os.environ.get("ENCLAVE_RETRIES", "3"))
# Trust anchor of attestation documents. Development: the local development PKI's root, created
# by `manage.py run_enclave`. Production: the AWS Nitro root, pinned by fingerprint.
ENCLAVE_TRUST_ROOT = os.environ.get("ENCLAVE_TRUST_ROOT", str(ENCLAVE_DIR / "pki" / "root.pem"))
ENCLAVE_ROOT_SHA256 = os.environ.get("ENCLAVE_ROOT_SHA256", "")
# Expected PCRs as "0=hex,1=hex,2=hex"; "measure" derives the development PCRs from the source.
ENCLAVE_EXPECTED_PCRS = os.environ.get("ENCLAVE_EXPECTED_PCRS", "measure")
ENCLAVE_ALLOW_DEBUG = env_bool("ENCLAVE_ALLOW_DEBUG", False)
# Hand the parent instance's AWS credentials to the enclave for its KMS calls (Nitro: it has no
# instance metadata). Off in development, where the enclave process has the simulator's keys.
ENCLAVE_PASS_AWS_CREDENTIALS = env_bool("ENCLAVE_PASS_AWS_CREDENTIALS", False)
ENCLAVE_ATTESTATION_MAX_AGE = int(os.environ.get("ENCLAVE_ATTESTATION_MAX_AGE", "300"))
# The KMS key that seals the enclave's key set: it must equal the enclave's --kms-key-id, and it
# chooses which stored sealed set the gateway hands back. (The KMS region and endpoint are the
# enclave's own launch arguments; the host never calls KMS.)
ENCLAVE_KMS_KEY_ID = os.environ.get("ENCLAVE_KMS_KEY_ID", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
