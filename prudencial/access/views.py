"""The staff member's second-factor enrolment page (the link of the invitation e-mail)."""

from __future__ import annotations

import segno
from django.contrib.auth import authenticate
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from prudencial.access import enrolment
from prudencial.access.signals import email_link_used
from prudencial.api.addresses import client_address

SESSION_KEY = "access_totp_enrolment"
TEMPLATE = "access/totp_enrol.html"


@never_cache
@sensitive_post_parameters("password", "code")
def totp_enrol(request, value: str):
    try:
        device = enrolment.device_for_link(value)
    except enrolment.EnrolmentLinkError as exc:
        email_link_used.send(
            sender=__name__, user=None, purpose=enrolment.PURPOSE, ok=False, request=request
        )
        return render(request, TEMPLATE, {"refused": str(exc)}, status=400)
    user = device.user
    context = {"login": user.get_username()}
    step = request.POST.get("step") if request.method == "POST" else None
    if step == "password":
        if authenticate(
            request, username=user.get_username(), password=request.POST.get("password", "")
        ):
            request.session[SESSION_KEY] = device.pk
        else:
            context["error"] = _("Senha incorreta.")
    elif step == "code" and request.session.get(SESSION_KEY) == device.pk:
        if enrolment.enrolment_confirm(
            device=device, code=request.POST.get("code", ""), ip_address=client_address(request)
        ):
            del request.session[SESSION_KEY]
            email_link_used.send(
                sender=__name__, user=user, purpose=enrolment.PURPOSE, ok=True, request=request
            )
            return render(request, TEMPLATE, {**context, "done": True})
        context["error"] = _("Código inválido: digite o código que o aplicativo mostra agora.")
    if request.session.get(SESSION_KEY) == device.pk:
        qr = segno.make(device.config_url, error="m")
        context.update(
            show_secret=True,
            qr_svg=mark_safe(qr.svg_inline(scale=4)),  # noqa: S308 (segno's own SVG)
            secret=_base32(device),
        )
    return render(request, TEMPLATE, context)


def _base32(device) -> str:
    from base64 import b32encode

    return b32encode(device.bin_key).decode()
