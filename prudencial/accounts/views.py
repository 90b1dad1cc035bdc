"""The login screen and the account pages (thin: the flows live in ``services``).

Laid out as the seed's CCEE screen: "Já tenho acesso" (login, senha, Entrar, "Esqueceu a senha?",
"Esqueceu o login de acesso?") beside "Criar / Redefinir Acesso" (an e-mail, one button). With
SSO configured the left column is the "Entrar com o login CCEE" button, and the local forms are
off unless ``ACCOUNTS_LOCAL_LOGIN`` keeps them.
"""

from __future__ import annotations

from django.contrib import auth, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django.views.generic import View
from mozilla_django_oidc import views as oidc_views

from prudencial.accounts import services
from prudencial.accounts.forms import (
    AccessRequestForm,
    ChoosePasswordForm,
    LoginForm,
    LoginReminderForm,
)
from prudencial.accounts.oidc import (
    callback_failure_message,
    local_login_enabled,
    provider_logout_url,
    session_is_sso,
    sso_enabled,
)
from prudencial.accounts.tokens import access_tokens

# The one answer to "send me a link" / "send me my login", whether or not the address is known.
NOTICES = {
    "access": lambda: (
        gettext(
            "Se este e-mail estiver cadastrado, enviamos a ele um link para criar ou redefinir o "
            "acesso. O link vale por %(minutes)s minutos e pode ser usado uma vez."
        )
        % {"minutes": services._link_minutes()}
    ),
    "login": lambda: gettext(
        "Se este e-mail for o e-mail confirmado de uma conta, enviamos a ele o login de acesso."
    ),
    "password": lambda: gettext("Senha definida: entre com seu login e a nova senha."),
}


def _require_local():
    if not local_login_enabled():
        raise Http404(gettext("O acesso local está desativado: entre com o login CCEE."))


def _login_context(request, **forms) -> dict:
    local = local_login_enabled()
    return {
        "sso_enabled": sso_enabled(),
        "local_enabled": local,
        "form": forms.get("form") or (LoginForm(request) if local else None),
        "access_form": forms.get("access_form") or AccessRequestForm(),
        "notice": NOTICES.get(request.GET.get("sent", ""), lambda: "")(),
        "next": request.GET.get("next", ""),
    }


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        _require_local()
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(_login_context(self.request, form=context.get("form")))
        return context


@method_decorator(never_cache, name="dispatch")
class AccessRequestView(View):
    """ "Criar / Redefinir Acesso" (and "Esqueceu a senha?"): GET the form, POST an address."""

    def get(self, request):
        _require_local()
        return render(request, "accounts/access.html", {"access_form": AccessRequestForm()})

    def post(self, request):
        _require_local()
        form = AccessRequestForm(request.POST)
        if not form.is_valid():
            return render(request, "accounts/access.html", {"access_form": form}, status=400)
        services.access_request(email=form.cleaned_data["email"], request=request)
        return HttpResponseRedirect(reverse("accounts:login") + "?sent=access")


@method_decorator(never_cache, name="dispatch")
class LoginReminderView(View):
    """ "Esqueceu o login de acesso?": the login goes to the account's confirmed e-mail."""

    def get(self, request):
        _require_local()
        return render(request, "accounts/forgot_login.html", {"form": LoginReminderForm()})

    def post(self, request):
        _require_local()
        form = LoginReminderForm(request.POST)
        if not form.is_valid():
            return render(request, "accounts/forgot_login.html", {"form": form}, status=400)
        services.login_reminder(email=form.cleaned_data["email"], request=request)
        return HttpResponseRedirect(reverse("accounts:login") + "?sent=login")


class AccessLinkView(auth_views.PasswordResetConfirmView):
    """The create/reset link: Django's own view (the token moves from the URL into the session
    before the form is shown, so it does not leak through the Referer), which sets the password
    through ``services.access_link_complete``: that spends the link and confirms the e-mail."""

    token_generator = access_tokens
    form_class = ChoosePasswordForm
    template_name = "accounts/access_link.html"
    success_url = reverse_lazy("accounts:login")
    post_reset_login = False

    def dispatch(self, *args, **kwargs):
        _require_local()
        return super().dispatch(*args, **kwargs)

    def _token(self) -> str:
        token = self.kwargs.get("token", "")
        if token == self.reset_url_token:
            token = self.request.session.get(INTERNAL_RESET_SESSION_TOKEN, "")
        return token

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if not self.validlink:
            context["reason"] = services.link_refused(
                user=self.user,
                token=self._token(),
                purpose=services.PURPOSE_ACCESS,
                request=self.request,
            )
        return context

    def render_to_response(self, context, **kwargs):
        if not self.validlink:
            kwargs["status"] = 410
        return super().render_to_response(context, **kwargs)

    def form_valid(self, form):
        services.access_link_complete(
            user=self.user, password=form.cleaned_data["new_password1"], request=self.request
        )
        self.request.session.pop(INTERNAL_RESET_SESSION_TOKEN, None)
        return HttpResponseRedirect(str(self.success_url) + "?sent=password")


@method_decorator(never_cache, name="dispatch")
class ConfirmEmailView(View):
    """The account page's confirmation link. GET shows a button and POST confirms, so that a
    mail scanner that opens links does not spend (or use) it."""

    def get(self, request, uidb64, token):
        user = services.link_user(uidb64)
        valid = user is not None and services.confirmation_tokens.check_token(user, token)
        if not valid:
            return self._refused(request, user, token)
        return render(request, "accounts/confirm_email.html", {"valid": True, "person": user})

    def post(self, request, uidb64, token):
        user = services.link_user(uidb64)
        if user is None or not services.confirmation_complete(
            user=user, token=token, request=request
        ):
            return self._refused(request, user, token)
        messages.success(request, gettext("E-mail confirmado."))
        return redirect("accounts:home" if request.user.is_authenticated else "accounts:login")

    def _refused(self, request, user, token):
        reason = services.link_refused(
            user=user, token=token, purpose=services.PURPOSE_CONFIRMATION, request=request
        )
        return render(
            request, "accounts/confirm_email.html", {"valid": False, "reason": reason}, status=410
        )


@method_decorator(login_required, name="dispatch")
class AccountView(View):
    """The account page: who you are, whether your e-mail is confirmed, a new confirmation link.
    The only page an agent's user with an unconfirmed e-mail can reach."""

    def get(self, request):
        return render(request, "accounts/account.html", self._context(request))

    def post(self, request):
        if request.POST.get("action") == "send-confirmation":
            services.confirmation_send(user=request.user, request=request)
            messages.info(
                request,
                gettext("Enviamos um link de confirmação para %(email)s.")
                % {"email": request.user.email},
            )
        return redirect("accounts:home")

    @staticmethod
    def _context(request) -> dict:
        user = request.user
        return {
            "confirmed": services.email_is_confirmed(user),
            "needs_confirmation": services.needs_confirmation(user),
            "sso_session": session_is_sso(request),
        }


@require_POST
def logout_view(request):
    """Sign out here; after an SSO sign-in, at the provider too (its end-session endpoint)."""
    url = reverse("accounts:login")
    if request.user.is_authenticated:
        if sso_enabled() and session_is_sso(request):
            url = provider_logout_url(request)
        auth.logout(request)
    return HttpResponseRedirect(url)


class OIDCStartView(oidc_views.OIDCAuthenticationRequestView):
    """ "Entrar com o login CCEE": off (404) when SSO is not configured."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the library reads its settings here; we do it per request

    def get(self, request):
        if not sso_enabled():
            raise Http404(gettext("O login CCEE não está configurado."))
        from django.conf import settings

        self.OIDC_OP_AUTH_ENDPOINT = settings.OIDC_OP_AUTHORIZATION_ENDPOINT
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class OIDCCallbackView(oidc_views.OIDCAuthenticationCallbackView):
    def get(self, request):
        if not sso_enabled():
            raise Http404(gettext("O login CCEE não está configurado."))
        return super().get(request)

    def login_failure(self):
        messages.error(self.request, callback_failure_message(self.request))
        return HttpResponseRedirect(reverse("accounts:login"))
