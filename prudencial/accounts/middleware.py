"""Until the e-mail is confirmed, nothing but the account page.

Pages: a signed-in agent's user whose address is not confirmed is sent to the account page,
which says why and sends a confirmation link. The API has the same rule as a DRF permission
(``prudencial.accounts.permissions.EmailConfirmed``), since a token-authenticated request has no
user here yet. CCEE staff are exempt (``services.needs_confirmation``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext

from prudencial.accounts.services import needs_confirmation

# Reachable before confirmation: the account pages themselves, the language switch, the static
# files, the admin's login (which tells an agent's user it is for staff) and the API (which has
# its own refusal with a JSON message).
_OPEN_PREFIXES = ("/accounts/", "/i18n/", "/api/", "/admin/")


class ConfirmedEmailMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not path.startswith(_OPEN_PREFIXES)
            and not path.startswith("/" + settings.STATIC_URL.lstrip("/"))
            and needs_confirmation(user)
        ):
            messages.warning(
                request,
                gettext(
                    "Confirme seu e-mail para acessar a plataforma: só esta página fica "
                    "disponível até lá."
                ),
            )
            return redirect(reverse("accounts:home"))
        return self.get_response(request)
