"""The admin's second factor: CCEE staff sign in with password *and* a TOTP code (django-otp).

``require_second_factor_in_admin`` turns the project's ``admin.site`` into a django-otp
``OTPAdminSite`` (the library's documented way: replace the class of the existing site, so every
registration stays): a session is admitted only when verified by one of the person's confirmed
devices. A staff login without its code, or with a wrong one, is refused at the login form, and
counts as a failed login for the lockout (django-axes) and the audit.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.utils.translation import gettext_lazy as _
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.forms import OTPAuthenticationFormMixin
from django_otp.plugins.otp_totp.models import TOTPDevice


def has_second_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


class StaffLoginForm(OTPAdminAuthenticationForm):
    """Login, password and the 6-digit code, in one form."""

    otp_token = forms.CharField(
        label=_("Código do autenticador"),
        required=False,
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    otp_error_messages = dict(
        OTPAuthenticationFormMixin.otp_error_messages,
        token_required=_(
            "Digite o código de 6 dígitos do seu aplicativo autenticador (segundo fator)."
        ),
        invalid_token=_("Código do autenticador inválido ou vencido: digite o código atual."),
    )
    no_device_message = _(
        "Esta conta de equipe ainda não tem segundo fator cadastrado: peça a um superusuário "
        "o link de cadastro (Controle de acesso → Quem tem acesso de equipe)."
    )

    def _chosen_device(self, user):
        """The device picked in the form or, as the form shows no picker, the person's newest
        confirmed TOTP device (staff hold one; enrolment replaces the pending ones)."""
        device = super()._chosen_device(user)
        if device is None:
            device = TOTPDevice.objects.filter(user=user, confirmed=True).order_by("-pk").first()
        return device

    def clean(self):
        self.cleaned_data = AdminAuthenticationForm.clean(self)  # password; active staff
        user = self.get_user()
        try:
            if user is not None and not has_second_factor(user):
                raise forms.ValidationError(self.no_device_message, code="no_second_factor")
            self.clean_otp(user)
        except forms.ValidationError:
            # A wrong or missing code is a failed login: the lockout and the audit count it.
            user_login_failed.send(
                sender=__name__,
                credentials={settings.AXES_USERNAME_FORM_FIELD: user.get_username()},
                request=self.request,
                reason="second_factor",
            )
            raise
        return self.cleaned_data


class StaffAdminSite(OTPAdminSite):
    login_form = StaffLoginForm
    login_template = "access/admin_login.html"


def require_second_factor_in_admin() -> None:
    if settings.ACCESS_ADMIN_REQUIRE_SECOND_FACTOR and not isinstance(admin.site, OTPAdminSite):
        admin.site.__class__ = StaffAdminSite
