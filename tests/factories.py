"""factory_boy factories and helpers for the registry.

Users get valid CPFs and agents valid CNPJs; agents, representations and weeks are created through
the services, so derived permissions, codes and copied parameters are the real ones.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import factory
from django.utils import timezone

from prudencial.domain.identifiers import cnpj_check_digits, cpf_check_digits
from prudencial.models import Agent, AgentClass, Representation, RepresentationRole, User, Week
from prudencial.services import agents as agent_services
from prudencial.services import representations as representation_services
from prudencial.services import weeks as week_services
from prudencial.services.parameters import parameters_save

BRASILIA = ZoneInfo("America/Sao_Paulo")
PASSWORD = "senha-de-teste-123"
PLD_FLOOR = Decimal("58.60")
PLD_CAP = Decimal("751.73")


def make_cpf(n: int) -> str:
    """A valid, unmasked CPF, different for each n."""
    base = f"{100000000 + n:09d}"
    return base + cpf_check_digits(base)


def make_cnpj(n: int) -> str:
    """A valid, unmasked numeric CNPJ (head office 0001), different for each n."""
    base = f"{10000000 + n:08d}0001"
    return base + cnpj_check_digits(base)


def brasilia(day: date, hour: int = 0, minute: int = 0) -> datetime:
    """An aware datetime at Brasília wall-clock time."""
    return datetime.combine(day, time(hour, minute), tzinfo=BRASILIA)


def today() -> date:
    """Today in Brasília, the day the services use."""
    return timezone.localdate()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n:04d}")
    first_name = "Usuária"
    last_name = factory.Sequence(lambda n: f"Teste {n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    cpf = factory.Sequence(make_cpf)
    password = factory.django.Password(PASSWORD)
    is_active = True

    @factory.post_generation
    def email_confirmed(obj, create, extracted, **kwargs):
        """Agents' users reach the platform once their e-mail is confirmed (prudencial.accounts):
        a factory user's is, unless ``UserFactory(email_confirmed=False)``."""
        if create and extracted is not False and obj.email:
            from prudencial.accounts.services import email_confirm

            email_confirm(user=obj, source="link")


class AgentFactory(factory.django.DjangoModelFactory):
    """Agents go through agent_create, with the same validation as in production."""

    class Meta:
        model = Agent

    acronym = factory.Sequence(lambda n: f"AG{n:04d}")
    cnpj = factory.Sequence(make_cnpj)
    legal_name = factory.LazyAttribute(lambda o: f"{o.acronym} Comercializadora de Energia S.A.")
    agent_class = AgentClass.TRADER

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return agent_services.agent_create(**kwargs)


def grant(
    user: User,
    agent: Agent,
    role: str = RepresentationRole.CONTROLS,
    *,
    valid_from: date | None = None,
    valid_until: date | None = None,
    granted_by: User | None = None,
) -> Representation:
    """A representation through representation_grant (its permissions derived at once).
    By default it started 30 days ago and has no end."""
    return representation_services.representation_grant(
        user=user,
        agent=agent,
        role=role,
        valid_from=valid_from or today() - timedelta(days=30),
        valid_until=valid_until,
        granted_by=granted_by,
    )


class RepresentationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Representation

    user = factory.SubFactory(UserFactory)
    agent = factory.SubFactory(AgentFactory)
    role = RepresentationRole.CONTROLS
    valid_from = factory.LazyFunction(lambda: today() - timedelta(days=30))
    valid_until = None
    granted_by = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return grant(kwargs.pop("user"), kwargs.pop("agent"), **kwargs)


class WeekFactory(factory.django.DjangoModelFactory):
    """A scheduled week through week_create: Monday to Sunday operation weeks from 2023-01-02,
    window from the following Monday 00:00 to Wednesday 20:00 (Brasília). The code follows from
    the operation end's month, and the parameters are copied from the previous week if it has any."""

    class Meta:
        model = Week

    operation_start = factory.Sequence(lambda n: date(2023, 1, 2) + timedelta(weeks=n))
    operation_end = factory.LazyAttribute(lambda o: o.operation_start + timedelta(days=6))
    opens_at = factory.LazyAttribute(lambda o: brasilia(o.operation_end + timedelta(days=1)))
    deadline = factory.LazyAttribute(lambda o: brasilia(o.operation_end + timedelta(days=3), 20))
    code = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return week_services.week_create(**kwargs)


def correlation_matrix(rho: float = 0.9, n: int = 7) -> list[list[float]]:
    """rho**|i−j|: symmetric, unit diagonal and positive definite for |rho| < 1."""
    return [[round(rho ** abs(i - j), 10) for j in range(n)] for i in range(n)]


def default_buckets() -> list[dict]:
    """Seven buckets M+0…M+6 with distinct values, so a copy or a shift would show."""
    return [
        {
            "volatility": Decimal("0.05") + Decimal("0.01") * i,
            "forward_price_se": Decimal(150 + 10 * i),
            "forward_price_s": Decimal(151 + 10 * i),
            "forward_price_ne": Decimal(140 + 10 * i),
            "forward_price_n": Decimal(141 + 10 * i),
            "stress_price_long": Decimal(700 + i),
            "stress_price_short": Decimal(60 + i),
        }
        for i in range(7)
    ]


def code_month(week: Week) -> date:
    return date(int(week.code[:4]), int(week.code[4:6]), 1)


def save_parameters(*, week: Week, buckets, by=None, **fields):
    """parameters_save with the fields as keyword arguments (first_month=…, pld_floor=…)."""
    return parameters_save(week=week, fields=fields, buckets=buckets, by=by)


def week_with_parameters(
    *,
    first_month: date | None = None,
    correlation: list[list[float]] | None = None,
    buckets: list[dict] | None = None,
    **week_kwargs,
) -> Week:
    """A scheduled week whose parameters were set by parameters_save (M+0 = the code's month)."""
    week = WeekFactory(**week_kwargs)
    parameters_save(
        week=week,
        fields={
            "first_month": first_month or code_month(week),
            "correlation": correlation if correlation is not None else correlation_matrix(),
            "pld_floor": PLD_FLOOR,
            "pld_cap": PLD_CAP,
        },
        buckets=buckets if buckets is not None else default_buckets(),
    )
    week.refresh_from_db()
    return week
