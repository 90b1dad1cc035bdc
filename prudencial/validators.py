"""Django validators for Brazilian tax ids: CNPJ (companies, numeric and the alphanumeric form
valid from July 2026) and CPF (people). Masked ("12.345.678/0001-95") and unmasked input are
accepted. The arithmetic (check digits, normal forms, masks) is prudencial.domain.identifiers';
this module only words its verdicts for forms and full_clean.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from prudencial.domain import identifiers
from prudencial.domain.identifiers import (  # noqa: F401 (re-exported for the host's callers)
    cnpj_check_digits,
    cpf_check_digits,
    format_cnpj,
    format_cpf,
    normalize_cnpj,
    normalize_cpf,
)

_CNPJ_MESSAGES = {
    identifiers.FORMAT: (
        _("CNPJ deve ter 12 caracteres alfanuméricos seguidos de 2 dígitos verificadores."),
        "cnpj_format",
    ),
    identifiers.REPEATED: (_("CNPJ com todos os caracteres iguais é inválido."), "cnpj_repeated"),
    identifiers.CHECK_DIGITS: (_("CNPJ com dígitos verificadores inválidos."), "cnpj_check_digits"),
}
_CPF_MESSAGES = {
    identifiers.FORMAT: (_("CPF deve ter 11 dígitos."), "cpf_format"),
    identifiers.REPEATED: (_("CPF com todos os dígitos iguais é inválido."), "cpf_repeated"),
    identifiers.CHECK_DIGITS: (_("CPF com dígitos verificadores inválidos."), "cpf_check_digits"),
}


def validate_cnpj(value: str) -> None:
    """Raise ValidationError unless value is a CNPJ with valid check digits."""
    problem = identifiers.cnpj_problem(normalize_cnpj(value))
    if problem is not None:
        message, code = _CNPJ_MESSAGES[problem]
        raise ValidationError(message, code=code)


def validate_cpf(value: str) -> None:
    """Raise ValidationError unless value is a CPF with valid check digits."""
    problem = identifiers.cpf_problem(normalize_cpf(value))
    if problem is not None:
        message, code = _CPF_MESSAGES[problem]
        raise ValidationError(message, code=code)
