"""The API's JSON parser: bounded nesting and no duplicate keys, refused as 400 with the rule.

Python's json module recurses once per level, so a body nested 100,000 deep ends in a
RecursionError (a 500); and ``{"a": 1, "a": 2}`` silently keeps the last value, so two readers
of the same body (a proxy, a log, this server) may disagree about what it says. The depth is
measured before parsing, in one linear pass over the bytes outside strings, so a deep body costs
no more than a scan.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from itertools import accumulate

from django.conf import settings
from django.utils.translation import gettext
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.json import strict_constant

# A JSON string, possibly unterminated (then json.loads refuses the body anyway). The possessive
# loops keep the scan linear whatever the body holds.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
# Openers become +1 and closers −1 when read as signed bytes.
_STEPS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")


class DuplicateKeyError(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def nesting_depth(text: str) -> int:
    """The deepest level of arrays and objects in a JSON text (0 for a scalar)."""
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text)).encode("ascii").translate(_STEPS)
    if not brackets:
        return 0
    return max(0, max(accumulate(array("b", brackets))))


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def _invalid(exc: Exception) -> ParseError:
    """Say where the body stops being JSON, never the parser's own text (it can quote the body
    or the runtime's limits)."""
    if isinstance(exc, json.JSONDecodeError):
        return ParseError(
            gettext("JSON inválido na linha %(line)s, coluna %(column)s.")
            % {"line": exc.lineno, "column": exc.colno},
            code="parse_error",
        )
    return ParseError(
        gettext("JSON inválido: números finitos, texto UTF-8 e inteiros de até 4300 dígitos."),
        code="parse_error",
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 would be Infinity
        raise ValueError("non-finite number")
    return value


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parsers.get_encoding(parser_context)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise _invalid(exc) from None
        limit = settings.PRUDENCIAL_API_MAX_JSON_DEPTH
        if nesting_depth(text) > limit:
            raise ParseError(
                gettext("JSON aninhado demais: no máximo %(limit)s níveis de listas e objetos.")
                % {"limit": limit},
                code="json_too_deep",
            )
        try:
            return json.loads(
                text,
                object_pairs_hook=_refuse_duplicates,
                parse_constant=strict_constant if self.strict else None,
                parse_float=_finite_float if self.strict else None,
            )
        except DuplicateKeyError as exc:
            raise ParseError(
                gettext("JSON com a chave %(key)s repetida num mesmo objeto: envie-a uma vez só.")
                % {"key": json.dumps(exc.key, ensure_ascii=False)[:80]},
                code="json_duplicate_key",
            ) from None
        except (ValueError, RecursionError) as exc:
            raise _invalid(exc) from None


class StreamedJSONParser(parsers.BaseParser):
    """The strict JSON parser read from the request stream, for routes with a larger body limit
    (``max_body_bytes_setting``). DRF hands a JSONParser subclass ``request.body``, which Django
    refuses past DATA_UPLOAD_MAX_MEMORY_SIZE (the API's 2.5 MiB default) whatever the route's
    own limit; the edge (prudencial.middleware) has already bounded the body by its
    Content-Length."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        return JSONParser().parse(stream, media_type, parser_context)
