"""The forms of the login screen (the seed's "Já tenho acesso" and "Criar / Redefinir Acesso")."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm
from django.utils.translation import gettext_lazy as _


class LoginForm(AuthenticationForm):
    """ "Já tenho acesso": login and senha. ``clean()`` is Django's: ``authenticate()`` with the
    request, so django-axes counts every failure and refuses a locked login or address."""

    username = forms.CharField(
        label=_("login"),
        max_length=150,
        widget=forms.TextInput(
            attrs={
                "autofocus": True,
                "autocomplete": "username",
                "placeholder": _("Entre com seu usuário de acesso"),
            }
        ),
    )
    password = forms.CharField(
        label=_("senha"),
        strip=False,
        widget=forms.PasswordInput(
            attrs={"autocomplete": "current-password", "placeholder": _("Digite sua senha")}
        ),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _("Login ou senha incorretos."),
        "inactive": _("Este acesso está desativado."),
    }


class EmailForm(forms.Form):
    email = forms.EmailField(
        label=_("e-mail"),
        max_length=254,
        widget=forms.EmailInput(
            attrs={
                "autocomplete": "email",
                "placeholder": _("Criação da conta de acesso ao ambiente CCEE"),
            }
        ),
    )


class AccessRequestForm(EmailForm):
    """ "Criar / Redefinir Acesso": "Insira um e-mail"."""


class LoginReminderForm(EmailForm):
    """ "Esqueceu o login de acesso?"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs["placeholder"] = _("O e-mail confirmado da sua conta")


class ChoosePasswordForm(SetPasswordForm):
    """The password chosen from an access link (Django's validators apply)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = _("nova senha")
        self.fields["new_password2"].label = _("confirme a nova senha")
