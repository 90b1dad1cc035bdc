"""Single sign-on with CCEE's identity provider over OpenID Connect (mozilla-django-oidc).

The library does the protocol: the authorization code flow with PKCE (S256) and a nonce, the
token exchange, the ID token's signature (the provider's JWKS), the silent re-authentication when
the ID token's time is up (``SessionRefresh``) and the end of the session at the provider. This
module says who the person is: the user whose CPF is the ``settings.OIDC_CPF_CLAIM`` claim.

SSO is configured when ``OIDC_RP_CLIENT_ID`` and ``OIDC_OP_AUTHORIZATION_ENDPOINT`` are set
(docs/accounts.md lists the settings); otherwise every piece here stands aside and the local
accounts serve.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django.utils.functional import cached_property
from django.utils.module_loading import import_string
from django.utils.translation import gettext
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh as LibrarySessionRefresh

from prudencial.domain.identifiers import cpf_is_valid, normalize_cpf

logger = logging.getLogger(__name__)

# Why the last callback refused the person (read by the callback view for its message).
FAILURE_ATTRIBUTE = "accounts_sso_failure"


def sso_enabled() -> bool:
    return bool(
        getattr(settings, "OIDC_RP_CLIENT_ID", "")
        and getattr(settings, "OIDC_OP_AUTHORIZATION_ENDPOINT", "")
    )


def local_login_enabled() -> bool:
    """Local accounts (password form, e-mail links): on when SSO is not configured, unless
    ``ACCOUNTS_LOCAL_LOGIN`` says otherwise (the demo shows both)."""
    configured = getattr(settings, "ACCOUNTS_LOCAL_LOGIN", None)
    return (not sso_enabled()) if configured is None else bool(configured)


def cpf_from_claim(value) -> str | None:
    """The claim's CPF in the stored form (11 digits) when it is a valid CPF, else None."""
    if not isinstance(value, str):
        return None
    cpf = normalize_cpf(value)
    return cpf if cpf_is_valid(cpf) else None


class CpfOIDCBackend(OIDCAuthenticationBackend):
    """The person is the user with the CPF of the ``OIDC_CPF_CLAIM`` claim (ID token or
    userinfo). A CPF the platform does not know yet gets a new user without representations
    (``OIDC_CREATE_USER``): CCEE's registry decides what they see. An e-mail the provider says
    is verified (``email_verified``) confirms the account's address."""

    def __init__(self, *args, **kwargs):
        self.configured = sso_enabled()
        if self.configured:
            super().__init__(*args, **kwargs)
        else:
            self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        if not self.configured:
            return None
        return super().authenticate(request, **kwargs)

    # -- who the person is --------------------------------------------------------------------

    def get_userinfo(self, access_token, id_token, payload):
        """The userinfo claims over the ID token's (the CPF may come in either)."""
        claims = {
            k: v
            for k, v in payload.items()
            if k not in {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "auth_time"}
        }
        claims.update(super().get_userinfo(access_token, id_token, payload))
        return claims

    def cpf_from(self, claims) -> str | None:
        return cpf_from_claim(claims.get(settings.OIDC_CPF_CLAIM))

    def _refuse(self, reason: str) -> None:
        if getattr(self, "request", None) is not None:
            setattr(self.request, FAILURE_ATTRIBUTE, reason)

    def verify_claims(self, claims) -> bool:
        if self.cpf_from(claims) is None:
            logger.warning(
                "SSO login refused: claim %r missing or not a valid CPF", settings.OIDC_CPF_CLAIM
            )
            self._refuse("no_cpf")
            return False
        return True

    def filter_users_by_claims(self, claims):
        cpf = self.cpf_from(claims)
        if cpf is None:
            return self.UserModel.objects.none()
        return self.UserModel.objects.filter(cpf=cpf)

    def describe_user_by_claims(self, claims) -> str:
        return f"CPF claim {settings.OIDC_CPF_CLAIM!r}"

    def get_or_create_user(self, access_token, id_token, payload):
        user = super().get_or_create_user(access_token, id_token, payload)
        request = getattr(self, "request", None)
        if user is None and request is not None and not getattr(request, FAILURE_ATTRIBUTE, None):
            self._refuse("unknown_cpf")
        return user

    def get_username(self, claims) -> str:
        cpf = self.cpf_from(claims)
        wanted = str(claims.get("preferred_username") or "").strip()[:150]
        if wanted and not self.UserModel.objects.filter(username__iexact=wanted).exists():
            return wanted
        return f"cpf{cpf}"

    def create_user(self, claims):
        user = self.UserModel(
            username=self.get_username(claims),
            cpf=self.cpf_from(claims),
            email=str(claims.get("email") or ""),
            first_name=str(claims.get("given_name") or "")[:150],
            last_name=str(claims.get("family_name") or "")[:150],
        )
        user.set_unusable_password()  # signs in through CCEE only
        user.full_clean()
        user.save()
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        """Keep the address and names CCEE has; confirm the address it says is verified."""
        from prudencial.accounts.services import email_confirm

        changed = []
        email = str(claims.get("email") or "")
        if email and email != user.email:
            user.email = email
            changed.append("email")
        for claim, field in (("given_name", "first_name"), ("family_name", "last_name")):
            value = str(claims.get(claim) or "")[:150]
            if value and value != getattr(user, field):
                setattr(user, field, value)
                changed.append(field)
        if changed:
            user.save(update_fields=changed)
        if email and claims.get("email_verified") is True:
            email_confirm(user=user, source="sso", request=getattr(self, "request", None))
        return user


def session_is_sso(request) -> bool:
    backend = request.session.get(BACKEND_SESSION_KEY)
    if not backend:
        return False
    try:
        return issubclass(import_string(backend), OIDCAuthenticationBackend)
    except ImportError:
        return False


def provider_logout_url(request) -> str:
    """``OIDC_OP_LOGOUT_URL_METHOD``: end the session at the provider too (RP-initiated logout),
    then come back to our login page. Without an end-session endpoint, only ours ends."""
    back = request.build_absolute_uri(reverse("accounts:login"))
    endpoint = getattr(settings, "OIDC_OP_LOGOUT_ENDPOINT", "")
    if not endpoint:
        return back
    params = {"post_logout_redirect_uri": back, "client_id": settings.OIDC_RP_CLIENT_ID}
    id_token = request.session.get("oidc_id_token")
    if id_token:
        params["id_token_hint"] = id_token
    return f"{endpoint}?{urlencode(params)}"


class SessionRefresh(LibrarySessionRefresh):
    """The library's session refresh (a silent ``prompt=none`` round trip to the provider once
    ``OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS`` have passed), reading the settings when it runs so that
    it stands aside when SSO is not configured, and answering the API with JSON instead of a
    redirect a client could not follow."""

    def __init__(self, get_response):
        MiddlewareMixin.__init__(self, get_response)  # not the library's: it reads settings here

    @property
    def OIDC_OP_AUTHORIZATION_ENDPOINT(self):  # noqa: N802 (the library's attribute names)
        return settings.OIDC_OP_AUTHORIZATION_ENDPOINT

    @property
    def OIDC_RP_CLIENT_ID(self):  # noqa: N802
        return settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_STATE_SIZE(self):  # noqa: N802
        return getattr(settings, "OIDC_STATE_SIZE", 32)

    @property
    def OIDC_AUTHENTICATION_CALLBACK_URL(self):  # noqa: N802
        return settings.OIDC_AUTHENTICATION_CALLBACK_URL

    @property
    def OIDC_RP_SCOPES(self):  # noqa: N802
        return settings.OIDC_RP_SCOPES

    @property
    def OIDC_USE_NONCE(self):  # noqa: N802
        return getattr(settings, "OIDC_USE_NONCE", True)

    @property
    def OIDC_NONCE_SIZE(self):  # noqa: N802
        return getattr(settings, "OIDC_NONCE_SIZE", 32)

    @property
    def OIDC_EXEMPT_URLS(self):  # noqa: N802
        return getattr(settings, "OIDC_EXEMPT_URLS", [])

    @cached_property
    def exempt_urls(self):
        named = ["accounts:oidc-start", "accounts:oidc-callback", "accounts:logout"]
        return {reverse(name) for name in named} | {
            url for url in self.OIDC_EXEMPT_URLS if isinstance(url, str)
        }

    def process_request(self, request):
        if not sso_enabled():
            return None
        response = super().process_request(request)
        if response is not None and request.path.startswith("/api/"):
            from prudencial.api.errors import error_response

            return error_response(
                401,
                "session_expired",
                gettext(
                    "Sua sessão do login CCEE precisa ser renovada: abra %(url)s no navegador "
                    "ou use um token da API."
                )
                % {"url": request.build_absolute_uri(reverse("accounts:oidc-start"))},
            )
        return response


def callback_failure_message(request) -> str:
    reason = getattr(request, FAILURE_ATTRIBUTE, None)
    if reason == "no_cpf":
        return gettext(
            "O login CCEE não informou um CPF válido: peça à CCEE que confira seu cadastro."
        )
    if reason == "unknown_cpf":
        return gettext(
            "Seu CPF ainda não está cadastrado na plataforma: peça à CCEE que cadastre suas "
            "responsabilidades e atribuições."
        )
    return gettext("Não foi possível entrar com o login CCEE. Tente de novo.")
