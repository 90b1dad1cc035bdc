"""Language: pt-BR unless the user chose another language (the /i18n/setlang/ cookie).

Django's LocaleMiddleware would follow the browser's Accept-Language, so an English-language
browser would get an English admin; the platform's default is Portuguese for everyone, with
English one click away.
"""

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class DefaultLanguageMiddleware(LocaleMiddleware):
    def process_request(self, request) -> None:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        supported = {code for code, _ in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
