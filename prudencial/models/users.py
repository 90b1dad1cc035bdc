"""Platform users: CCEE staff and the people who act for market agents, identified by CPF."""

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from prudencial.domain.identifiers import CPF_PATTERN, format_cpf
from prudencial.models.fields import CpfField
from prudencial.validators import validate_cpf


class User(AbstractUser):
    """A person with a CCEE login. Agents' users reach data only through representations."""

    cpf = CpfField(
        _("CPF"),
        max_length=11,
        unique=True,
        null=True,
        blank=True,
        validators=[validate_cpf],
        help_text=_("CPF do usuário (com ou sem máscara)."),
    )

    class Meta:
        verbose_name = _("usuário")
        verbose_name_plural = _("usuários")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(cpf__isnull=True) | models.Q(cpf__regex=CPF_PATTERN),
                name="user_cpf_normalized",
                violation_error_message=_("O CPF deve ter 11 dígitos, sem máscara."),
            )
        ]

    def clean(self) -> None:
        """People who control or represent agents are identified by their CPF: it stays."""
        super().clean()
        if not self.cpf and self.pk and self.representations.exists():
            raise ValidationError(
                {
                    "cpf": _(
                        "Este usuário controla ou representa agentes: o CPF é obrigatório "
                        "(encerre as representações antes de removê-lo)."
                    )
                }
            )

    def save(self, *args, **kwargs) -> None:
        # No CPF is NULL, never "" (the unique constraint allows many NULLs); CpfField
        # normalises a given one.
        if not self.cpf:
            self.cpf = None
        super().save(*args, **kwargs)

    @property
    def cpf_display(self) -> str:
        return format_cpf(self.cpf) if self.cpf else ""
