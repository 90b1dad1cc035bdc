"""Every API error as JSON with a message a person can act on.

Shape: {"error": {"code": "...", "message": "...", "fields": {"field": ["rule"]}}}, with the
HTTP status that fits (400 validation, 401 not authenticated, 403 forbidden, 404 not visible or
missing, 409 invalid state transition).
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from prudencial.exceptions import TransitionError

# Lazy: translated when a response is built, in the language of that request.
_MESSAGES = {
    status.HTTP_401_UNAUTHORIZED: _(
        "Autenticação necessária: envie 'Authorization: Token <token>' ou faça login."
    ),
    status.HTTP_403_FORBIDDEN: _("Você não tem permissão para esta operação."),
    status.HTTP_404_NOT_FOUND: _("Não encontrado (ou você não tem acesso a este objeto)."),
}
_CSRF_MESSAGE = _(
    "Requisição de sessão sem token CSRF válido: envie o cabeçalho X-CSRFToken com o valor do "
    "cookie csrftoken, ou autentique-se com 'Authorization: Token <token>'."
)


def _django_error(exc: DjangoValidationError) -> exceptions.APIException:
    if hasattr(exc, "message_dict"):
        return exceptions.ValidationError(exc.message_dict)
    return exceptions.ValidationError({"non_field_errors": exc.messages})


def exception_handler(exc, context):
    """DRF exception handler that normalises every error to one JSON shape."""
    if isinstance(exc, TransitionError):
        return Response(
            {
                "error": {
                    "code": "invalid_transition",
                    "message": " ".join(exc.messages),
                    "fields": {},
                }
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, DjangoValidationError):
        exc = _django_error(exc)
    elif isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    fields: dict = {}
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = {
            k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in detail.items()
        }
        parts = [f"{k}: {'; '.join(v)}" for k, v in fields.items()]
        message = gettext("Dados inválidos — %(errors)s") % {"errors": " | ".join(parts)}
        code = "invalid"
    else:
        message = str(_MESSAGES.get(response.status_code) or getattr(exc, "detail", exc))
        if response.status_code not in _MESSAGES and hasattr(exc, "detail"):
            message = str(exc.detail)
        code = getattr(exc, "default_code", "error")
        if isinstance(getattr(exc, "detail", None), exceptions.ErrorDetail):
            code = exc.detail.code or code
        detail = str(getattr(exc, "detail", ""))
        if response.status_code == status.HTTP_403_FORBIDDEN:
            if detail.startswith("CSRF Failed"):
                # A browser session posting without the token: "no permission" would mislead.
                message, code = str(_CSRF_MESSAGE), "csrf_failed"
            elif detail and detail != str(getattr(exc, "default_detail", "")):
                message = detail  # a refusal that says which rule: keep it
    response.data = {"error": {"code": code, "message": message, "fields": fields}}
    return response


def _api_or(default_view, status_code: int, code: str, message: str):
    """A URL-level error handler: the API's JSON shape under /api/, Django's page elsewhere."""
    from django.http import JsonResponse

    def handler(request, *args, **kwargs):
        if request.path.startswith("/api/"):
            return JsonResponse(
                {"error": {"code": code, "message": str(message), "fields": {}}},
                status=status_code,
            )
        return default_view(request, *args, **kwargs)

    return handler


def _defaults():
    from django.views import defaults

    return defaults


handler404 = _api_or(
    lambda request, exception: _defaults().page_not_found(request, exception),
    404,
    "not_found",
    _("Endereço não encontrado na API: veja /api/v1/docs/."),
)
handler500 = _api_or(
    lambda request: _defaults().server_error(request),
    500,
    "server_error",
    _("Erro interno do servidor: a equipe foi notificada; tente novamente mais tarde."),
)
