"""Load a demo market: agents of every class, their users and representations, CCEE staff,
weekly reporting events in every state and realistic CCEE parameters. Everything is written
through prudencial.services, as the admin and the API write it.

    manage.py load_demo_market --agents 300 --seed 1 --weeks 3

Weeks follow CCEE's example (week 202303001): the operating week runs Friday to Thursday, the
window opens on the Friday at 00:00 and closes on the next Friday at 20:00, Brasília time.
--weeks N gives N weeks up to the one open now: N−2 published, one closed, one open; one more
is scheduled for the next Friday.

The passwords printed at the end are fixed and for the demo only. Running the command again
does nothing (it prints the logins); --reset deletes the demo market first.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from prudencial.access.enrolment import demo_device
from prudencial.access.tokens import token_create
from prudencial.accounts.services import email_confirm
from prudencial.domain.identifiers import cnpj_check_digits, cpf_check_digits
from prudencial.domain.market import BUCKET_COUNT, add_months
from prudencial.management.commands.setup_roles import STAFF_GROUP, setup_staff_group
from prudencial.models import (
    Agent,
    AgentClass,
    ParameterBucket,
    Representation,
    RepresentationRole,
    RiskParameters,
    User,
    Week,
    WeekStatus,
)
from prudencial.risk.pld import pld_history_2017
from prudencial.services.agents import agents_bulk_write
from prudencial.services.parameters import parameters_save
from prudencial.services.representations import (
    representations_bulk_write,
    representations_overlapping,
)
from prudencial.services.weeks import (
    week_create,
    week_transition,
)

DEMO_EMAIL_DOMAIN = "demo.invalid"
STAFF_LOGIN = ("ccee", "ccee-demo-2026")
AGENT_LOGIN = ("agente", "agente-demo-2026")
SUPERUSER_LOGIN = ("admin", "admin-demo-2026")

# Regulatory PLD floor and cap (R$/MWh) by year; later years use the latest known.
PLD_LIMITS = {
    2024: (Decimal("61.07"), Decimal("716.80")),
    2025: (Decimal("58.60"), Decimal("751.73")),
    2026: (Decimal("57.31"), Decimal("785.27")),
}

# Share of each class in the demo market and the acronym prefix CCEE-style codes use.
CLASS_MIX = (
    (AgentClass.FREE_CONSUMER, 0.36, "CL"),
    (AgentClass.SPECIAL_CONSUMER, 0.14, "CE"),
    (AgentClass.GENERATOR, 0.22, "GE"),
    (AgentClass.TRADER, 0.16, "CM"),
    (AgentClass.SELF_PRODUCER, 0.07, "AP"),
    (AgentClass.DISTRIBUTOR, 0.05, "DI"),
)
NAME_PATTERNS = {
    AgentClass.TRADER: "Comercializadora {w} Ltda.",
    AgentClass.GENERATOR: "{w} Geração de Energia S.A.",
    AgentClass.SELF_PRODUCER: "{w} Autoprodução de Energia Ltda.",
    AgentClass.FREE_CONSUMER: "{w} Indústria e Comércio Ltda.",
    AgentClass.SPECIAL_CONSUMER: "Supermercados {w} Ltda.",
    AgentClass.DISTRIBUTOR: "Distribuidora de Energia {w} S.A.",
}
WORDS = (
    "Alfa", "Beta", "Gama", "Delta", "Sigma", "Ômega", "Aurora", "Horizonte", "Ipê", "Jatobá",
    "Cerrado", "Pampa", "Serra Azul", "Rio Claro", "Vale Verde", "Atlântico", "Boreal", "Cruzeiro",
    "Solar", "Ventos do Sul", "Paraná", "Tocantins", "Xingu", "Araguaia", "Itaipava", "Mantiqueira",
    "Borborema", "Chapada", "Planalto", "Litoral", "Sertão", "Caatinga", "Aroeira", "Buriti",
    "Carnaúba", "Guará", "Jaguar", "Tucano", "Seriema", "Sabiá", "Bem-te-vi", "Capivari",
    "Piracicaba", "Tietê", "São Francisco", "Iguaçu", "Paraíba", "Madeira", "Tapajós", "Juruá",
)  # fmt: skip
FIRST_NAMES = (
    "Ana", "Bruno", "Carla", "Daniel", "Eduarda", "Felipe", "Gabriela", "Henrique", "Isabela",
    "João", "Larissa", "Marcos", "Natália", "Otávio", "Patrícia", "Rafael", "Sofia", "Thiago",
    "Vanessa", "Wagner", "Beatriz", "Caio", "Débora", "Fábio", "Helena", "Igor", "Júlia", "Lucas",
)  # fmt: skip
LAST_NAMES = (
    "Silva", "Santos", "Oliveira", "Souza", "Lima", "Pereira", "Ferreira", "Costa", "Rodrigues",
    "Almeida", "Nascimento", "Carvalho", "Araújo", "Ribeiro", "Gomes", "Martins", "Rocha", "Barbosa",
)  # fmt: skip
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class DemoSummary:
    agents: int
    users: int
    representations: int
    weeks: list[tuple[str, str]]
    agent_user_links: list[str]
    token: str


class DemoMarket:
    """Builds the demo market with one random generator, so a seed gives the same market."""

    def __init__(self, *, seed: int, progress: bool) -> None:
        self.rng = random.Random(seed)
        self.progress = progress
        self.cnpjs: set[str] = set()
        self.cpfs: set[str] = set(User.objects.exclude(cpf=None).values_list("cpf", flat=True))
        self.cpfs = {c[:9] for c in self.cpfs}
        self.usernames: set[str] = set(User.objects.values_list("username", flat=True))
        self.stems: dict[str, int] = {}
        self.unusable = make_password(None)

    # --- identifiers ---------------------------------------------------------------------

    def cnpj(self, *, alphanumeric: bool = False) -> str:
        while True:
            alphabet = _ALNUM if alphanumeric else "0123456789"
            root = "".join(self.rng.choice(alphabet) for _ in range(8))
            base = root + "0001"
            if len(set(base)) > 1 and base not in self.cnpjs:
                self.cnpjs.add(base)
                return base + cnpj_check_digits(base)

    def cpf(self) -> str:
        while True:
            base = "".join(self.rng.choice("0123456789") for _ in range(9))
            if len(set(base)) > 1 and base not in self.cpfs:
                self.cpfs.add(base)
                return base + cpf_check_digits(base)

    # --- people ------------------------------------------------------------------------------

    def person(self, username: str | None = None, **extra: Any) -> User:
        """A user with a unique username (first.last, then first.last2, …) and a valid CPF,
        not saved: people() writes them in bulk. Usernames are checked against a set read
        once, not probed one query at a time."""
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        if username is None:
            stem = f"{first}.{last}".lower()
            stem = stem.translate(str.maketrans("áâãéêíóôõúç", "aaaeeiooouc"))
            n = self.stems.get(stem, 0) + 1
            username = stem if n == 1 else f"{stem}{n}"
            while username in self.usernames:
                n += 1
                username = f"{stem}{n}"
            self.stems[stem] = n
        self.usernames.add(username)
        return User(
            username=username,
            first_name=first,
            last_name=last,
            email=f"{username}@{DEMO_EMAIL_DOMAIN}",
            cpf=self.cpf(),
            password=self.unusable,
            **extra,
        )

    def login(self, credentials: tuple[str, str], **extra: Any) -> User:
        user = self.person(credentials[0], **extra)
        user.set_password(credentials[1])
        user.full_clean()
        user.save()
        return user

    # --- agents ------------------------------------------------------------------------------

    def agents(self, count: int, staff: User) -> list[Agent]:
        """count agents in the class mix, written through agents_bulk_write. Acronyms are the
        class prefix and a number drawn without repetition from a range wide enough for the
        class's share (CL1…CL7200 for 20,000 agents), so any market size has unique acronyms."""
        plan: list[tuple[str, str]] = []
        for agent_class, share, prefix in CLASS_MIX:
            plan += [(agent_class, prefix)] * max(1, round(count * share))
        plan = plan[:count]
        while len(plan) < count:
            plan.append((AgentClass.FREE_CONSUMER, "CL"))
        self.rng.shuffle(plan)
        needed: dict[str, int] = {}
        for _, prefix in plan:
            needed[prefix] = needed.get(prefix, 0) + 1
        numbers = {
            prefix: self.rng.sample(range(1, max(999, n) + 1), n) for prefix, n in needed.items()
        }
        used_names: dict[str, int] = {}
        created = []
        for agent_class, prefix in plan:
            acronym = f"{prefix}{numbers[prefix].pop()}"
            word = self.rng.choice(WORDS)
            name = NAME_PATTERNS[agent_class].format(w=word)
            if name in used_names:  # the next free suffix, remembered per name
                suffix = used_names[name] + 1
                used_names[name] = suffix
                name = NAME_PATTERNS[agent_class].format(w=f"{word} {suffix}")
            used_names.setdefault(name, 1)
            created.append(
                Agent(
                    acronym=acronym,
                    cnpj=self.cnpj(alphanumeric=self.rng.random() < 0.04),
                    legal_name=name,
                    agent_class=agent_class,
                    is_active=self.rng.random() > 0.03,
                )
            )
        for start in tqdm(
            range(0, len(created), 2000), desc="agentes (lotes de 2.000)", disable=not self.progress
        ):
            agents_bulk_write(creates=created[start : start + 2000], by=staff, reason="demo market")
        return created

    # --- representations ---------------------------------------------------------------------

    def representations(
        self, agents: list[Agent], staff: User, demo_user: User
    ) -> tuple[int, int, list[str]]:
        """Each agent has a user who controls it and a monitoring representative; consultants
        represent many agents; some representations have ended and a few start later."""
        today = timezone.localdate()
        users: list[User] = []
        grants: list[dict[str, Any]] = []
        seen: set[tuple[int, int, str]] = set()

        def grant(
            user: User, agent: Agent, role: str, start: date, end: date | None = None
        ) -> None:
            if (user.pk, agent.pk, role) in seen:
                return  # one link per user, agent and role keeps periods from overlapping
            seen.add((user.pk, agent.pk, role))
            grants.append(
                {
                    "user": user,
                    "agent": agent,
                    "role": role,
                    "valid_from": start,
                    "valid_until": end,
                }
            )

        def since() -> date:
            return today - timedelta(days=self.rng.randint(30, 900))

        owners = []
        for agent in agents:
            owners.append((self.person(), agent, since()))
        users += [owner for owner, _, _ in owners]
        consultants = [self.person() for _ in range(max(3, len(agents) // 30))]
        users += consultants
        for user in users:
            # Unique by build; validate_cpf holds the constraint's rule (no query per user).
            user.full_clean(validate_unique=False, validate_constraints=False)
        User.objects.bulk_create(users, batch_size=2000)
        for owner, agent, start in owners:
            grant(owner, agent, RepresentationRole.CONTROLS, start)
        monitors = consultants + users[: len(agents)]
        for agent in agents:
            monitor = self.rng.choice(monitors)
            grant(monitor, agent, RepresentationRole.MONITORING, since())
        for consultant in consultants:
            for agent in self.rng.sample(agents, k=min(len(agents), self.rng.randint(4, 12))):
                start = since()
                if self.rng.random() < 0.2:
                    end = today - timedelta(days=self.rng.randint(1, 20))
                    grant(consultant, agent, RepresentationRole.REPRESENTS, min(start, end), end)
                else:
                    grant(consultant, agent, RepresentationRole.REPRESENTS, start)
        for agent in self.rng.sample(agents, k=max(1, len(agents) // 50)):
            grant(self.rng.choice(consultants), agent, RepresentationRole.MONITORING,
                  today + timedelta(days=self.rng.randint(3, 30)))  # fmt: skip

        # The demo agent user: controls a trader, represents a generator, is the monitoring
        # representative of a consumer, and lost access to one agent last week.
        by_class: dict[str, list[Agent]] = {}
        for agent in agents:
            if agent.is_active:
                by_class.setdefault(agent.agent_class, []).append(agent)
        demo_links = [
            (AgentClass.TRADER, RepresentationRole.CONTROLS, None),
            (AgentClass.GENERATOR, RepresentationRole.REPRESENTS, None),
            (AgentClass.FREE_CONSUMER, RepresentationRole.MONITORING, None),
            (AgentClass.SPECIAL_CONSUMER, RepresentationRole.REPRESENTS, today - timedelta(days=7)),
        ]
        described = []
        for agent_class, role, end in demo_links:
            candidates = by_class.get(agent_class) or agents
            agent = candidates[0]
            grant(demo_user, agent, role, today - timedelta(days=120), end)
            state = f"encerrada em {end:%d/%m/%Y}" if end else "em vigor"
            described.append(
                f"{agent.acronym} ({agent.get_agent_class_display()}): "
                f"{RepresentationRole(role).label}, {state}"
            )

        reps = [Representation(granted_by=staff, **g) for g in grants]
        for rep in reps:
            # Users and agents were just written: no SELECT per foreign key and row.
            rep.full_clean(
                exclude=["user", "agent", "granted_by"],
                validate_unique=False,
                validate_constraints=False,
            )
        if representations_overlapping(reps):  # the same rule the services hold, in bulk
            raise CommandError("demo market: overlapping representations generated")
        for start in tqdm(
            range(0, len(reps), 5000),
            desc="representações (lotes de 5.000)",
            disable=not self.progress,
        ):
            representations_bulk_write(
                creates=reps[start : start + 5000], by=staff, reason="demo market"
            )
        return len(users) + 1, len(grants), described

    # --- weeks and parameters ----------------------------------------------------------------

    def parameters_for(self, week: Week) -> dict[str, Any]:
        first_month = date(int(week.code[:4]), int(week.code[4:6]), 1)
        floor, cap = PLD_LIMITS.get(first_month.year, PLD_LIMITS[max(PLD_LIMITS)])
        jitter = lambda spread: 1 + self.rng.uniform(-spread, spread)  # noqa: E731
        buckets = []
        for i in range(BUCKET_COUNT):
            month = add_months(first_month, i).month
            # Dry season (May–November) prices higher in SE/CO; a gentle curve otherwise.
            seasonal = 1.25 if 5 <= month <= 11 else 0.9
            se = Decimal(str(round(190 * seasonal * jitter(0.06), 2)))
            buckets.append(
                {
                    "volatility": Decimal(str(round((0.045 - 0.004 * i) * jitter(0.1), 6))),
                    "forward_price_se": se,
                    "forward_price_s": (se * Decimal("0.97")).quantize(Decimal("0.01")),
                    "forward_price_ne": (se * Decimal("0.82")).quantize(Decimal("0.01")),
                    "forward_price_n": (se * Decimal("0.86")).quantize(Decimal("0.01")),
                    "stress_price_long": max(
                        floor, (se * Decimal("0.55")).quantize(Decimal("0.01"))
                    ),
                    "stress_price_short": min(cap, (se * Decimal("2.2")).quantize(Decimal("0.01"))),
                }
            )
        return {
            "first_month": first_month,
            "correlation": [
                [round(0.9 ** abs(i - j), 6) for j in range(BUCKET_COUNT)]
                for i in range(BUCKET_COUNT)
            ],
            "buckets": buckets,
            "pld_floor": floor,
            "pld_cap": cap,
            "confidence": Decimal("0.95"),
            "liquidation_days": 5,
            # The demo's price history: the packaged SE/CO 2017 series (a real week's comes
            # from CCEE); the enclave never falls back to it.
            "pld_history": [round(float(v), 2) for v in pld_history_2017()],
        }

    def weeks(self, count: int, staff: User) -> list[Week]:
        """count weeks up to the open one (published…, closed, open) plus one scheduled."""
        now = timezone.localtime()
        friday = (now - timedelta(days=(now.weekday() - 4) % 7)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        if now < friday + timedelta(hours=20):
            friday -= timedelta(days=7)  # last Friday's window is still open until 20:00
        starts = [friday - timedelta(days=7 * k) for k in range(count - 1, -1, -1)]
        starts.append(friday + timedelta(days=7))
        weeks = []
        for start in starts:
            week = self.week_with_parameters(start, staff)
            weeks.append(week)
        targets = [WeekStatus.PUBLISHED] * (count - 2) + [
            WeekStatus.CLOSED,
            WeekStatus.OPEN,
            WeekStatus.SCHEDULED,
        ]
        path = [WeekStatus.OPEN, WeekStatus.CLOSED, WeekStatus.COMPUTED, WeekStatus.PUBLISHED]
        for week, target in zip(weeks, targets, strict=True):
            if target == WeekStatus.SCHEDULED:
                continue
            for status in path[: path.index(target) + 1]:
                week_transition(week=week, to=status, by=staff)
        self.staff_adjustment(weeks[-2], staff)
        return weeks

    def week_with_parameters(self, start: datetime, staff: User) -> Week:
        week = week_create(
            operation_start=start.date(),
            operation_end=(start + timedelta(days=6)).date(),
            opens_at=start,
            deadline=start + timedelta(days=7, hours=20),
            by=staff,
        )
        values = self.parameters_for(week)
        buckets = values.pop("buckets")
        parameters_save(week=week, fields=values, buckets=buckets, by=staff)
        return week

    def staff_adjustment(self, week: Week, staff: User) -> None:
        """One edit by the staff user on the open week, so its history shows old → new."""
        bucket = ParameterBucket.objects.get(parameters__week=week, index=1)
        parameters_save(
            week=week,
            by=staff,
            fields={"fa_alert_threshold": Decimal("0.8")},
            buckets={
                1: {
                    "volatility": (bucket.volatility * Decimal("1.2")).quantize(Decimal("0.000001"))
                }
            },
        )


class Command(BaseCommand):
    help = "Carrega um mercado de demonstração (agentes, usuários, representações, semanas)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agents", type=int, default=300, help="número de agentes (≥ 10)")
        parser.add_argument("--seed", type=int, default=1, help="semente do gerador aleatório")
        parser.add_argument(
            "--weeks", type=int, default=3, help="semanas até a aberta (≥ 3), além da agendada"
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="apaga agentes, semanas e usuários de demonstração antes de carregar (só demo!)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["agents"] < 10:
            raise CommandError("--agents deve ser pelo menos 10.")
        if options["weeks"] < 3:
            raise CommandError("--weeks deve ser pelo menos 3 (publicada, encerrada, aberta).")
        loaded = User.objects.filter(username=STAFF_LOGIN[0]).exists()
        if loaded and not options["reset"]:
            self.stdout.write(
                self.style.WARNING(
                    "O mercado de demonstração já está carregado (use --reset para recarregar)."
                )
            )
            self.print_logins(None)
            return
        progress = options["verbosity"] > 0
        # One INFO line per grant would bury the progress bar; -v 2 keeps them.
        service_log = logging.getLogger("prudencial.services")
        previous_level = service_log.level
        if options["verbosity"] < 2:
            service_log.setLevel(logging.WARNING)
        try:
            with transaction.atomic():
                if options["reset"]:
                    self.reset()
                summary = self.load(options["agents"], options["seed"], options["weeks"], progress)
        finally:
            service_log.setLevel(previous_level)
        self.print_logins(summary)

    def reset(self) -> None:
        """Everything the demo writes; a real database has no users at the demo domain."""
        Representation.objects.all().delete()
        Agent.objects.all().delete()
        Week.objects.all().delete()
        User.objects.filter(email__endswith=f"@{DEMO_EMAIL_DOMAIN}").delete()
        for model in (Agent, Representation, Week, RiskParameters, ParameterBucket):
            model.history.all().delete()

    def load(self, agents: int, seed: int, weeks: int, progress: bool) -> DemoSummary:
        group, _ = setup_staff_group()
        market = DemoMarket(seed=seed, progress=progress)
        staff = market.login(STAFF_LOGIN, is_staff=True)
        staff.groups.add(Group.objects.get(name=STAFF_GROUP))
        superuser = market.login(SUPERUSER_LOGIN, is_staff=True, is_superuser=True)
        # The admin asks staff for a TOTP code (prudencial.access): fixed demo keys, printed.
        demo_device(staff)
        demo_device(superuser)
        demo_user = market.login(AGENT_LOGIN)
        email_confirm(user=demo_user, source="link")  # its e-mail confirmed: the modules show
        _token, token_key = token_create(user=demo_user, name="demo")
        created = market.agents(agents, staff)
        users, grants, links = market.representations(created, staff, demo_user)
        created_weeks = market.weeks(weeks, staff)
        return DemoSummary(
            agents=len(created),
            users=users + 2,
            representations=grants,
            weeks=[(w.code, w.get_status_display()) for w in created_weeks],
            agent_user_links=links,
            token=token_key,
        )

    def print_logins(self, summary: DemoSummary | None) -> None:
        out = self.stdout
        if summary is not None:
            out.write(
                self.style.SUCCESS(
                    f"Mercado de demonstração: {summary.agents} agentes, {summary.users} usuários, "
                    f"{summary.representations} representações."
                )
            )
            out.write("Semanas: " + ", ".join(f"{c} ({s})" for c, s in summary.weeks))
        out.write("")
        out.write("Logins de demonstração (senhas fixas, SOMENTE para demonstração):")
        out.write(f"  Equipe CCEE (admin /admin/):  {STAFF_LOGIN[0]} / {STAFF_LOGIN[1]}")
        out.write(f"  Superusuário (admin /admin/): {SUPERUSER_LOGIN[0]} / {SUPERUSER_LOGIN[1]}")
        out.write(f"  Usuário de agente (API):      {AGENT_LOGIN[0]} / {AGENT_LOGIN[1]}")
        links = summary.agent_user_links if summary else self.describe_links()
        for line in links:
            out.write(f"    - {line}")
        for login in (STAFF_LOGIN[0], SUPERUSER_LOGIN[0]):
            key = self.second_factor_key(login)
            if key:
                out.write(f"  Segundo fator de {login} (TOTP, chave de demonstração): {key}")
        token = summary.token if summary else self.agent_token()
        if token:
            out.write(f"    Token da API: Authorization: Token {token}")

    def describe_links(self) -> list[str]:
        reps = Representation.objects.filter(user__username=AGENT_LOGIN[0]).select_related("agent")
        return [
            f"{r.agent.acronym} ({r.agent.get_agent_class_display()}): {r.get_role_display()}, "
            + (f"encerrada em {r.valid_until:%d/%m/%Y}" if r.valid_until else "em vigor")
            for r in reps
        ]

    def agent_token(self) -> str:
        """A new token (a token's key is shown only when it is created)."""
        user = User.objects.filter(username=AGENT_LOGIN[0]).first()
        return token_create(user=user, name="demo")[1] if user else ""

    def second_factor_key(self, login: str) -> str:
        user = User.objects.filter(username=login, is_staff=True).first()
        return demo_device(user) if user else ""
