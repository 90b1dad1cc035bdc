"""Model fields that normalise what they hold (the only place besides the services that does):
Brazilian tax ids accept masked input everywhere (forms, full_clean, imports, lookups) and store
the normalized form that the database constraints check; acronyms are stored upper-case.
The rules themselves are prudencial.domain.identifiers'."""

from django.db import models

from prudencial.domain.identifiers import normalize_acronym, normalize_cnpj, normalize_cpf


class NormalizedCharField(models.CharField):
    """A CharField whose value is normalised on clean, on save (the instance keeps the stored
    form) and in lookups."""

    normalize = staticmethod(str)

    def _normal(self, value):
        return self.normalize(value) if value else value

    def to_python(self, value):
        return self._normal(super().to_python(value))

    def get_prep_value(self, value):
        return self._normal(super().get_prep_value(value))

    def pre_save(self, model_instance, add):
        value = self._normal(getattr(model_instance, self.attname))
        setattr(model_instance, self.attname, value)
        return value


class AcronymField(NormalizedCharField):
    """An agent's acronym (sigla): " cm47 " is stored, compared and looked up as "CM47"."""

    normalize = staticmethod(normalize_acronym)


class CnpjField(NormalizedCharField):
    """14 characters stored; "12.345.678/0001-95" (18) accepted on input."""

    normalize = staticmethod(normalize_cnpj)

    def formfield(self, **kwargs):
        return super().formfield(**{"max_length": 18, **kwargs})


class CpfField(NormalizedCharField):
    """11 digits stored; "123.456.789-09" (14) accepted on input."""

    normalize = staticmethod(normalize_cpf)

    def formfield(self, **kwargs):
        return super().formfield(**{"max_length": 14, **kwargs})
