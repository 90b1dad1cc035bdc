"""Every API error as JSON with a message a person can act on.

Shape: {"error": {"code": "...", "message": "...", "fields": {"field": ["rule"]}}}, with the
HTTP status that fits (400 validation or unreadable body, 401 not authenticated, 403 forbidden,
404 not visible or missing, 409 invalid state transition, 413 body too large, 415 unsupported
media type, 429 throttled or locked out). docs/api.md § Errors lists the codes.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import (
    ObjectDoesNotExist,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.urls import Resolver404, resolve
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


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class TooManyParts(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = _("Corpo com campos ou arquivos demais.")
    default_code = "too_many_fields"


class LockedOut(exceptions.APIException):
    """Too many failed logins for this username or from this address (django-axes)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self, message: str, wait_seconds: int):
        super().__init__(message)
        self.wait = wait_seconds  # DRF's handler sends it as Retry-After


def too_large_message(size: int | None, limit: int) -> str:
    if size is None:
        return gettext("O corpo da requisição passa do limite de %(limit)s bytes.") % {
            "limit": limit
        }
    return gettext("O corpo da requisição tem %(size)s bytes; o limite é %(limit)s bytes.") % {
        "size": size,
        "limit": limit,
    }


def error_response(
    status_code: int, code: str, message: str, headers: dict | None = None
) -> JsonResponse:
    """The API's error shape outside DRF views (middleware, URL-level handlers)."""
    return JsonResponse(
        {"error": {"code": code, "message": str(message), "fields": {}}},
        status=status_code,
        headers=headers,
        json_dumps_params={"ensure_ascii": False},
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
    elif isinstance(exc, RequestDataTooBig):
        # Raised while reading the body (e.g. form fields past DATA_UPLOAD_MAX_MEMORY_SIZE);
        # the middleware refuses a declared Content-Length over the limit before this.
        exc = RequestTooLarge(too_large_message(None, settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        exc = TooManyParts()
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
        if code == "throttled" and getattr(exc, "wait", None):
            message = gettext("Requisições demais: tente de novo daqui a %(seconds)s s.") % {
                "seconds": exc.wait
            }
        detail = str(getattr(exc, "detail", ""))
        if response.status_code == status.HTTP_403_FORBIDDEN:
            if detail.startswith("CSRF Failed"):
                # A browser session posting without the token: "no permission" would mislead.
                message, code = str(_CSRF_MESSAGE), "csrf_failed"
            elif detail and detail != str(getattr(exc, "default_detail", "")):
                message = detail  # a refusal that says which rule: keep it
        elif getattr(exc, "says_why", False):
            message = detail  # e.g. a token refused because it expired (prudencial.access)
    response.data = {"error": {"code": code, "message": message, "fields": fields}}
    return response


def _api_or(default_view, status_code: int, code: str, message: str):
    """A URL-level error handler: the API's JSON shape under /api/, Django's page elsewhere."""

    def handler(request, *args, **kwargs):
        if request.path.startswith("/api/"):
            return error_response(status_code, code, message)
        return default_view(request, *args, **kwargs)

    return handler


def _defaults():
    from django.views import defaults

    return defaults


_NOT_FOUND_MESSAGE = _("Endereço não encontrado na API: veja /api/v1/docs/.")


def _with_slash(request) -> str | None:
    """The URL with a trailing slash, when that one exists."""
    if request.path_info.endswith("/"):
        return None
    try:
        resolve(request.path_info + "/")
    except Resolver404:
        return None
    return request.path + "/"


def api_not_found(request) -> JsonResponse:
    """404 under /api/, in every setting (DEBUG's technical page included): the API's shape, and
    for a URL that lacks only its trailing slash, the URL to use. The API does not redirect: a
    301 would turn a POST into a GET and lose its body."""
    with_slash = _with_slash(request)
    if with_slash:
        return error_response(
            404,
            "missing_trailing_slash",
            gettext("Endereço sem a barra final: use %(url)s (com a barra final).")
            % {"url": with_slash},
        )
    return error_response(404, "not_found", _NOT_FOUND_MESSAGE)


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return api_not_found(request)
    return _defaults().page_not_found(request, exception)


handler500 = _api_or(
    lambda request: _defaults().server_error(request),
    500,
    "server_error",
    _("Erro interno do servidor: a equipe foi notificada; tente novamente mais tarde."),
)
