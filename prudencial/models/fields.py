"""Model fields for Brazilian tax ids: accept masked input everywhere (forms, full_clean,
imports) and store the normalized form that the database constraints check."""

from django.db import models

from prudencial.validators import normalize_cnpj, normalize_cpf


class CnpjField(models.CharField):
    """14 characters stored; "12.345.678/0001-95" (18) accepted on input."""

    def to_python(self, value):
        value = super().to_python(value)
        return normalize_cnpj(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return normalize_cnpj(value) if value else value

    def formfield(self, **kwargs):
        return super().formfield(**{"max_length": 18, **kwargs})


class CpfField(models.CharField):
    """11 digits stored; "123.456.789-09" (14) accepted on input."""

    def to_python(self, value):
        value = super().to_python(value)
        return normalize_cpf(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return normalize_cpf(value) if value else value

    def formfield(self, **kwargs):
        return super().formfield(**{"max_length": 14, **kwargs})
