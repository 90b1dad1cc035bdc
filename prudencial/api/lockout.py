"""Login lockout (django-axes) for the token endpoint and the admin login: the wait and the answer.

Axes counts failures per username and per client address separately
(``AXES_LOCKOUT_PARAMETERS``); ``AXES_FAILURE_LIMIT`` failures within ``AXES_COOLOFF_TIME`` lock
that username, or that address, for the cool-off. Every attempt during a lockout is a failure too
and starts the cool-off again, so the wait is always the whole cool-off from now.
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.conf import settings
from django.shortcuts import render
from django.utils.translation import ngettext

from prudencial.api.errors import LockedOut, error_response


class LockoutBackend(AxesStandaloneBackend):
    """Axes' backend (first in AUTHENTICATION_BACKENDS), for logins that come with a request.

    A call without one (``Client.login`` in tests, a management command) is no client's attempt
    over HTTP, so there is nothing to count; axes itself would refuse it with an exception. Every
    login over HTTP here passes its request (the admin's form, DRF's token serializer)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def wait_seconds(request) -> int:
    cool_off = get_cool_off(request)
    return int(cool_off.total_seconds()) if cool_off else 0


def lockout_message(request) -> str:
    minutes = max(1, round(wait_seconds(request) / 60))
    return ngettext(
        "Acesso bloqueado após %(failures)s tentativas de login malsucedidas: tente de novo "
        "daqui a %(minutes)s minuto.",
        "Acesso bloqueado após %(failures)s tentativas de login malsucedidas: tente de novo "
        "daqui a %(minutes)s minutos.",
        minutes,
    ) % {"failures": settings.AXES_FAILURE_LIMIT, "minutes": minutes}


def locked_out(request) -> LockedOut:
    """The API's 429 (with Retry-After) for a locked-out login."""
    return LockedOut(lockout_message(request), wait_seconds(request))


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the admin login's page (pt-BR by default), JSON under /api/."""
    headers = {"Retry-After": str(wait_seconds(request))}
    if request.path.startswith("/api/"):
        return error_response(429, "locked_out", lockout_message(request), headers=headers)
    response = render(
        request, "admin/lockout.html", {"message": lockout_message(request)}, status=429
    )
    response["Retry-After"] = headers["Retry-After"]
    return response
