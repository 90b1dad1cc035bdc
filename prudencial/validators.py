"""Brazilian tax-id validators: CNPJ (companies, numeric and the alphanumeric form valid from
July 2026) and CPF (people). Masked ("12.345.678/0001-95") and unmasked input are accepted.

Check digits follow the Receita Federal modulo-11 rule. For the alphanumeric CNPJ
(IN RFB 2.229/2024) each of the first twelve characters is worth its ASCII code minus 48
("0"–"9" → 0–9, "A" → 17 … "Z" → 42); the two check digits stay numeric.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

_CNPJ_MASK = re.compile(r"[.\-/\s]")
_CPF_MASK = re.compile(r"[.\-\s]")
_CNPJ_SHAPE = re.compile(r"^[0-9A-Z]{12}[0-9]{2}$")
_CPF_SHAPE = re.compile(r"^[0-9]{11}$")
_CNPJ_WEIGHTS_1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)


def _mod11_digit(values: list[int], weights: tuple[int, ...]) -> int:
    remainder = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def normalize_cnpj(value: str) -> str:
    """Strip the mask and upper-case; the stored form is 14 characters."""
    return _CNPJ_MASK.sub("", str(value or "")).upper()


def normalize_cpf(value: str) -> str:
    """Strip the mask; the stored form is 11 digits."""
    return _CPF_MASK.sub("", str(value or ""))


def cnpj_check_digits(base12: str) -> str:
    """The two check digits of a 12-character CNPJ base (numeric or alphanumeric)."""
    values = [ord(ch) - 48 for ch in base12.upper()]
    first = _mod11_digit(values, _CNPJ_WEIGHTS_1)
    second = _mod11_digit([*values, first], _CNPJ_WEIGHTS_2)
    return f"{first}{second}"


def cpf_check_digits(base9: str) -> str:
    """The two check digits of a 9-digit CPF base."""
    values = [int(ch) for ch in base9]
    first = (sum(v * w for v, w in zip(values, range(10, 1, -1), strict=True)) * 10) % 11 % 10
    second = (
        (sum(v * w for v, w in zip([*values, first], range(11, 1, -1), strict=True)) * 10) % 11 % 10
    )
    return f"{first}{second}"


def validate_cnpj(value: str) -> None:
    """Raise ValidationError unless value is a CNPJ with valid check digits."""
    cnpj = normalize_cnpj(value)
    if not _CNPJ_SHAPE.match(cnpj):
        raise ValidationError(
            _("CNPJ deve ter 12 caracteres alfanuméricos seguidos de 2 dígitos verificadores."),
            code="cnpj_format",
        )
    if len(set(cnpj)) == 1:
        raise ValidationError(
            _("CNPJ com todos os caracteres iguais é inválido."), code="cnpj_repeated"
        )
    if cnpj_check_digits(cnpj[:12]) != cnpj[12:]:
        raise ValidationError(
            _("CNPJ com dígitos verificadores inválidos."), code="cnpj_check_digits"
        )


def validate_cpf(value: str) -> None:
    """Raise ValidationError unless value is a CPF with valid check digits."""
    cpf = normalize_cpf(value)
    if not _CPF_SHAPE.match(cpf):
        raise ValidationError(_("CPF deve ter 11 dígitos."), code="cpf_format")
    if len(set(cpf)) == 1:
        raise ValidationError(_("CPF com todos os dígitos iguais é inválido."), code="cpf_repeated")
    if cpf_check_digits(cpf[:9]) != cpf[9:]:
        raise ValidationError(
            _("CPF com dígitos verificadores inválidos."), code="cpf_check_digits"
        )


def format_cnpj(value: str) -> str:
    """Mask a stored CNPJ as 12.345.678/0001-95 (alphanumeric keeps its letters)."""
    c = normalize_cnpj(value)
    if len(c) != 14:
        return value
    return f"{c[:2]}.{c[2:5]}.{c[5:8]}/{c[8:12]}-{c[12:]}"


def format_cpf(value: str) -> str:
    """Mask a stored CPF as 123.456.789-09."""
    c = normalize_cpf(value)
    if len(c) != 11:
        return value
    return f"{c[:3]}.{c[3:6]}.{c[6:9]}-{c[9:]}"
