"""Writes and checks of the account flows: access links, forgotten logins, e-mail confirmation.

Every page of the flows calls these (views stay thin). The answers to "send me a link" and "send
me my login" never depend on whether the address is known: the functions return nothing, and
the pages say the same thing either way.
"""

from __future__ import annotations

import hashlib
import logging

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from prudencial.accounts import signals
from prudencial.accounts.models import AccountState
from prudencial.accounts.tokens import access_tokens, confirmation_tokens, is_expired

logger = logging.getLogger(__name__)

PURPOSE_ACCESS = "access"
PURPOSE_CONFIRMATION = "confirmation"
_GENERATORS = {PURPOSE_ACCESS: access_tokens, PURPOSE_CONFIRMATION: confirmation_tokens}
_CACHE_SECONDS = 3600


def _audit_link(*, user, purpose: str, ok: bool, request) -> None:
    """Tell the access audit too (``prudencial.access.signals.email_link_used``, its contract for
    "a link sent by e-mail was opened and acted on"), when that app is installed."""
    if not apps.is_installed("prudencial.access"):
        return
    from prudencial.access.signals import email_link_used

    email_link_used.send(sender=AccountState, user=user, purpose=purpose, ok=ok, request=request)


def _access_purpose(user) -> str:
    return "reset_password" if user is not None and user.has_usable_password() else "create_access"


# --- e-mail confirmation state ---------------------------------------------------------------


def _cache_key(user) -> str:
    # The account's join time too, so a key never outlives its account (ids can be reused).
    seed = f"{user.pk}|{user.date_joined.isoformat()}|{(user.email or '').lower()}"
    return f"accounts:email-confirmed:{hashlib.sha256(seed.encode()).hexdigest()[:32]}"


def email_is_confirmed(user) -> bool:
    """Whether the user's current e-mail address is the one they confirmed.

    Asked on every request of a signed-in agent's user (the gate), so a positive answer is
    cached per user and address: a changed address is another key, and so unconfirmed at once."""
    if not user.email:
        return False
    key = _cache_key(user)
    if cache.get(key):
        return True
    state = AccountState.objects.filter(user_id=user.pk).first()
    confirmed = bool(state and state.confirms(user.email))
    if confirmed:
        cache.set(key, True, _CACHE_SECONDS)
    return confirmed


def needs_confirmation(user) -> bool:
    """Whether this signed-in user may reach only the account page (the seed's "logins já
    confirmados por e-mail"). CCEE staff are exempt: their accounts are made by CCEE's
    administrators, and the admin has its own second factor."""
    if not getattr(settings, "ACCOUNTS_REQUIRE_CONFIRMED_EMAIL", True):
        return False
    if not user.is_authenticated or user.is_staff or user.is_superuser:
        return False
    return not email_is_confirmed(user)


@transaction.atomic
def email_confirm(*, user, source: str, request=None, at=None) -> AccountState:
    """Record that ``user.email`` is the user's own address (idempotent for the same address)."""
    state, _created = AccountState.objects.select_for_update().get_or_create(user=user)
    if state.confirms(user.email):
        return state
    state.confirmed_email = user.email
    state.email_confirmed_at = at or timezone.now()
    state.save()
    cache.set(_cache_key(user), True, _CACHE_SECONDS)
    signals.email_confirmed.send(
        sender=AccountState, user=user, email=user.email, source=source, request=request
    )
    return state


# --- links -----------------------------------------------------------------------------------


def _absolute(request, path: str) -> str:
    base = getattr(settings, "ACCOUNTS_SITE_URL", "")
    if base:
        return base.rstrip("/") + path
    return request.build_absolute_uri(path)


def link_url(*, request, user, purpose: str) -> str:
    generator = _GENERATORS[purpose]
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    name = "accounts:access-link" if purpose == PURPOSE_ACCESS else "accounts:confirm-email"
    path = reverse(name, kwargs={"uidb64": uidb64, "token": generator.make_token(user)})
    return _absolute(request, path)


def _send(*, template: str, to: str, context: dict) -> None:
    subject = render_to_string(f"accounts/email/{template}_subject.txt", context)
    body = render_to_string(f"accounts/email/{template}.txt", context)
    send_mail(" ".join(subject.split()), body, None, [to])


def _link_minutes() -> int:
    return max(1, settings.PASSWORD_RESET_TIMEOUT // 60)


def _context(request, **extra) -> dict:
    return {
        "site_name": "Plataforma de Monitoramento Prudencial — CCEE",
        "login_url": _absolute(request, reverse("accounts:login")),
        "minutes": _link_minutes(),
        **extra,
    }


def _users_with_email(email: str):
    User = get_user_model()
    return list(User.objects.filter(email__iexact=email, is_active=True).order_by("pk"))


def access_request(*, email: str, request) -> None:
    """ "Criar / Redefinir Acesso": e-mail a create/reset link to every active account with this
    address (the account exists in the registry; the link sets its first or a new password).

    An unknown address gets nothing, and the caller answers the same either way."""
    email = (email or "").strip()
    users = _users_with_email(email) if email else []
    for user in users:
        _send(
            template="access_link",
            to=user.email,
            context=_context(
                request,
                user=user,
                url=link_url(request=request, user=user, purpose=PURPOSE_ACCESS),
                creating=not user.has_usable_password(),
            ),
        )
        signals.link_sent.send(
            sender=AccountState, user=user, purpose=PURPOSE_ACCESS, request=request
        )
    signals.access_requested.send(sender=AccountState, email=email, users=users, request=request)


def login_reminder(*, email: str, request) -> None:
    """ "Esqueceu o login de acesso?": e-mail the logins whose confirmed address is this one.

    An address nobody confirmed gets nothing (a login is sent only where it was shown to belong),
    and the caller answers the same either way."""
    email = (email or "").strip()
    users = [u for u in _users_with_email(email) if email_is_confirmed(u)] if email else []
    if users:
        _send(
            template="login_reminder",
            to=users[0].email,
            context=_context(request, users=users, email=email),
        )
    signals.login_reminder_requested.send(
        sender=AccountState, email=email, users=users, request=request
    )
    for user in users:
        _audit_link(user=user, purpose="forgot_login", ok=True, request=request)


def confirmation_send(*, user, request) -> None:
    """The account page's "send me a confirmation link" for the user's current address."""
    if not user.email:
        return
    _send(
        template="confirmation_link",
        to=user.email,
        context=_context(
            request,
            user=user,
            url=link_url(request=request, user=user, purpose=PURPOSE_CONFIRMATION),
        ),
    )
    signals.link_sent.send(
        sender=AccountState, user=user, purpose=PURPOSE_CONFIRMATION, request=request
    )


def link_user(uidb64: str):
    """The account a link names, or None."""
    User = get_user_model()
    try:
        pk = urlsafe_base64_decode(uidb64).decode()
        return User._default_manager.get(pk=pk, is_active=True)
    except (TypeError, ValueError, OverflowError, User.DoesNotExist):
        return None


def link_refused(*, user, token: str, purpose: str, request) -> str:
    """Announce a refused link and say why: ``"expired"`` or ``"invalid"``."""
    generator = _GENERATORS[purpose]
    reason = "expired" if user is not None and is_expired(generator, token) else "invalid"
    signals.link_refused.send(
        sender=AccountState, user=user, purpose=purpose, reason=reason, request=request
    )
    audit_purpose = _access_purpose(user) if purpose == PURPOSE_ACCESS else "confirm_email"
    _audit_link(user=user, purpose=audit_purpose, ok=False, request=request)
    return reason


@transaction.atomic
def access_link_complete(*, user, password: str, request) -> None:
    """The create/reset link was opened and a valid password chosen: set it (which spends the
    link) and confirm the address the link went to."""
    audit_purpose = _access_purpose(user)
    user.set_password(password)
    user.save(update_fields=["password"])
    email_confirm(user=user, source="link", request=request)
    signals.link_used.send(sender=AccountState, user=user, purpose=PURPOSE_ACCESS, request=request)
    _audit_link(user=user, purpose=audit_purpose, ok=True, request=request)


def confirmation_complete(*, user, token: str, request) -> bool:
    """Open a confirmation link: True when it confirmed the address (and so is spent)."""
    if not confirmation_tokens.check_token(user, token):
        return False
    email_confirm(user=user, source="link", request=request)
    signals.link_used.send(
        sender=AccountState, user=user, purpose=PURPOSE_CONFIRMATION, request=request
    )
    _audit_link(user=user, purpose="confirm_email", ok=True, request=request)
    return True
