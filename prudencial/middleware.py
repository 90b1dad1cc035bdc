"""The project's middleware: the default language, and the API's edge (size limits, JSON errors).

Language: pt-BR unless the user chose another language (the /i18n/setlang/ cookie). Django's
LocaleMiddleware would follow the browser's Accept-Language, so an English-language browser would
get an English admin; the platform's default is Portuguese for everyone, with English one click
away.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.middleware.locale import LocaleMiddleware
from django.urls import Resolver404, resolve
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from prudencial.api.errors import api_not_found, error_response, too_large_message


class DefaultLanguageMiddleware(LocaleMiddleware):
    def process_request(self, request) -> None:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _label in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()


class APIBoundaryMiddleware:
    """The API's edge, under /api/ only (first in MIDDLEWARE, so it sees every answer).

    - A declared body over ``PRUDENCIAL_API_MAX_BODY_BYTES`` is refused with 413 before anything
      reads it; a chunked body (no Content-Length) with 411, since Django would read it as empty.
    - Every 4xx answer is the API's JSON error shape, whoever produced it: Django's technical 404
      page under DEBUG, a 400 for a bad Host header, a DRF error rendered for the schema view.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        refused = self._refuse_body(request)
        if refused is not None:
            return refused
        return self._as_json(request, self.get_response(request))

    def process_exception(self, request, exception):
        if request.path.startswith("/api/") and isinstance(exception, RequestDataTooBig):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return error_response(413, "request_too_large", too_large_message(None, limit))
        return None

    def _refuse_body(self, request):
        declared = request.META.get("CONTENT_LENGTH") or ""
        if not declared:
            if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                return error_response(
                    411,
                    "length_required",
                    gettext("Envie o corpo com Content-Length (corpo em partes não é aceito)."),
                )
            return None
        if not (declared.isascii() and declared.isdigit()):
            return error_response(
                400,
                "invalid_content_length",
                gettext("Content-Length deve ser um inteiro não negativo."),
            )
        limit = settings.PRUDENCIAL_API_MAX_BODY_BYTES
        if int(declared) > limit:
            limit = _route_body_limit(request, limit)
        if int(declared) > limit:
            return error_response(413, "request_too_large", too_large_message(int(declared), limit))
        return None

    def _as_json(self, request, response):
        content_type = response.get("Content-Type", "")
        if not 400 <= response.status_code < 500 or _is_json(content_type):
            return response
        if response.status_code == 404:
            converted = api_not_found(request)
        elif isinstance(getattr(response, "data", None), dict) and "error" in response.data:
            converted = JsonResponse(response.data, status=response.status_code)
        else:
            code, message = _GENERIC.get(response.status_code, ("error", response.reason_phrase))
            converted = error_response(response.status_code, code, message)
        for header in ("WWW-Authenticate", "Retry-After", "Allow"):
            if header in response:
                converted[header] = response[header]
        return converted


def _route_body_limit(request, default: int) -> int:
    """The larger body limit a view declares by naming a setting (``max_body_bytes_setting``:
    the batch upload), else the API's default. Only looked up for a body over the default."""
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return default
    name = getattr(getattr(view, "view_class", None), "max_body_bytes_setting", None)
    return int(getattr(settings, name)) if name else default


# Answers Django gives before or around the views (a bad Host header, a CSRF page...).
_GENERIC = {
    400: ("bad_request", _("Requisição recusada: cabeçalhos ou formato inválidos.")),
    403: ("forbidden", _("Você não tem permissão para esta operação.")),
    405: ("method_not_allowed", _("Método não aceito neste endereço.")),
}


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class CommonMiddleware(DjangoCommonMiddleware):
    """Django's CommonMiddleware without APPEND_SLASH under /api/: a POST redirected by 301
    arrives as a GET without its body (and under DEBUG the redirect is a RuntimeError). The
    API's 404 says which URL to use instead (prudencial.api.errors.api_not_found)."""

    def should_redirect_with_slash(self, request) -> bool:
        if request.path_info.startswith("/api/"):
            return False
        return super().should_redirect_with_slash(request)
