"""Tax ids and acronyms: CNPJ (companies; numeric, and alphanumeric from July 2026), CPF
(people) and the agent's acronym (sigla), their normal forms and check digits.

Check digits follow the Receita Federal modulo-11 rule. For the alphanumeric CNPJ
(IN RFB 2.229/2024) each of the first twelve characters is worth its ASCII code minus 48
("0"–"9" → 0–9, "A" → 17 … "Z" → 42); the two check digits stay numeric.
"""

from __future__ import annotations

import re

CNPJ_PATTERN = r"^[0-9A-Z]{12}[0-9]{2}$"  # the stored form (also the JSON Schemas' pattern)
CPF_PATTERN = r"^[0-9]{11}$"
_CNPJ_SHAPE = re.compile(CNPJ_PATTERN)
_CPF_SHAPE = re.compile(CPF_PATTERN)
_CNPJ_MASK = re.compile(r"[.\-/\s]")
_CPF_MASK = re.compile(r"[.\-\s]")
_CNPJ_WEIGHTS_1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)

# What is wrong with a tax id, as a code the host words in its language.
FORMAT, REPEATED, CHECK_DIGITS = "format", "repeated", "check_digits"


def _mod11_digit(values: list[int], weights: tuple[int, ...]) -> int:
    remainder = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def normalize_cnpj(value: object) -> str:
    """Strip the mask and upper-case; the stored form is 14 characters."""
    return _CNPJ_MASK.sub("", str(value or "")).upper()


def normalize_cpf(value: object) -> str:
    """Strip the mask; the stored form is 11 digits."""
    return _CPF_MASK.sub("", str(value or ""))


def normalize_acronym(value: object) -> str:
    """Acronyms (siglas) are stored upper-case without surrounding spaces: " cm47 " → "CM47"."""
    return str(value or "").strip().upper()


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


def cnpj_problem(cnpj: str) -> str | None:
    """None for a valid CNPJ in its stored form, else FORMAT, REPEATED or CHECK_DIGITS."""
    if not isinstance(cnpj, str) or not _CNPJ_SHAPE.match(cnpj):
        return FORMAT
    if len(set(cnpj)) == 1:
        return REPEATED
    if cnpj_check_digits(cnpj[:12]) != cnpj[12:]:
        return CHECK_DIGITS
    return None


def cpf_problem(cpf: str) -> str | None:
    """None for a valid CPF in its stored form, else FORMAT, REPEATED or CHECK_DIGITS."""
    if not isinstance(cpf, str) or not _CPF_SHAPE.match(cpf):
        return FORMAT
    if len(set(cpf)) == 1:
        return REPEATED
    if cpf_check_digits(cpf[:9]) != cpf[9:]:
        return CHECK_DIGITS
    return None


def cnpj_is_valid(cnpj: str) -> bool:
    """A CNPJ in its stored form (no mask, upper case) with valid check digits."""
    return cnpj_problem(cnpj) is None


def cpf_is_valid(cpf: str) -> bool:
    return cpf_problem(cpf) is None


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
