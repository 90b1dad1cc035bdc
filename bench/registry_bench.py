"""Registry at market scale (issue 10 items 3 and 6): the registry feed, the expiry task and the
20,000-agent demo market, on PostgreSQL. Not a test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/feed \
        .venv/bin/python bench/registry_bench.py [--changes 50000] [--demo-agents 20000] \
        [--out bench/results/registry.md]

Runs in a throw-away test database (Django's test database machinery: ``test_<name>``, created
and dropped here), never in the database named by DATABASE_URL itself.

Targets: 50,000 representation changes applied in under 60 s; the 20,000-agent demo market
loaded in under 3 minutes.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from prudencial.domain.identifiers import cnpj_check_digits, cpf_check_digits  # noqa: E402
from prudencial.models import (  # noqa: E402
    Agent,
    AgentClass,
    AgentUserObjectPermission,
    Representation,
    User,
)
from prudencial.services.agents import agents_bulk_write  # noqa: E402
from prudencial.services.registry_feed import registry_feed_apply  # noqa: E402
from prudencial.services.representations import expire_representations  # noqa: E402


def cpf(n: int) -> str:
    base = f"{200000000 + n:09d}"
    return base + cpf_check_digits(base)


def cnpj(n: int) -> str:
    base = f"{20000000 + n:08d}0001"
    return base + cnpj_check_digits(base)


class Timer:
    def __init__(self):
        self.rows: list[tuple[str, float, float, int, str]] = []

    def run(self, label: str, fn, note=""):
        count = [0]

        def counting(execute, sql, params, many, context):
            count[0] += 1
            return execute(sql, params, many, context)

        start, cpu = time.perf_counter(), time.process_time()
        with connection.execute_wrapper(counting):
            result = fn()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.rows.append((label, elapsed, cpu, count[0], note(result) if callable(note) else note))
        print(
            f"{label}: {elapsed:.2f} s ({cpu:.2f} s CPU here), {count[0]} queries "
            f"{self.rows[-1][4]}",
            flush=True,
        )
        return result


def market(n_agents: int, n_users: int, by: User) -> tuple[list[Agent], list[User]]:
    agents = [
        Agent(
            acronym=f"BX{i}",
            cnpj=cnpj(i),
            legal_name=f"Bench {i} Comercializadora Ltda.",
            agent_class=AgentClass.TRADER,
        )
        for i in range(n_agents)
    ]
    for start in range(0, n_agents, 5000):
        agents_bulk_write(creates=agents[start : start + 5000], by=by)
    users = [
        User(username=f"bench{i}", cpf=cpf(i), first_name="Bench", last_name=str(i))
        for i in range(n_users)
    ]
    User.objects.bulk_create(users, batch_size=5000)
    return agents, users


def feed_creates(n: int, agents: list[Agent], users: list[User]) -> list[dict]:
    start = (timezone.localdate() - timedelta(days=30)).isoformat()
    roles = ("controls", "represents", "monitoring")
    rows = []
    for i in range(n):
        rows.append(
            {
                "external_id": f"REG-{i}",
                "action": "create",
                "cpf": users[i % len(users)].cpf,
                "agent": agents[(i * 7) % len(agents)].acronym
                if i % 2
                else agents[(i * 7) % len(agents)].cnpj,
                "role": roles[i % 3],
                "valid_from": start,
            }
        )
    return rows


def feed_mixed(n: int, agents: list[Agent], users: list[User]) -> list[dict]:
    """Half changes of end dates, 30 % ends, 20 % new representations."""
    later = (timezone.localdate() + timedelta(days=90)).isoformat()
    rows = []
    n_change, n_end = n // 2, (n * 3) // 10
    for i in range(n_change):
        rows.append({"external_id": f"REG-{i}", "action": "change", "valid_until": later})
    for i in range(n_change, n_change + n_end):
        rows.append({"external_id": f"REG-{i}", "action": "end"})
    new = feed_creates(n - n_change - n_end, agents, users[::-1])
    for i, row in enumerate(new):
        row["external_id"] = f"NEW-{i}"
        row["role"] = "represents" if row["role"] != "represents" else "monitoring"
    return rows + new


def admin_scale(timer: Timer) -> None:
    """On the 20,000-agent market: the admin import of 5,000 agents (preview and import, as
    the background task runs them), the representation search, and the user page of a
    representative firm with 3,000 representations."""
    import tablib
    from django.contrib import admin
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    from prudencial.resources import AgentResource

    staff = User.objects.create(username="bench.admin", is_staff=True, is_superuser=True)
    rows = [
        [f"IMP{i}", cnpj(900_000 + i), f"Importada {i} S.A.", "trader", "", "sim"]
        for i in range(5000)
    ]
    dataset = tablib.Dataset(
        *rows, headers=["sigla", "cnpj", "razao_social", "classe", "periodicidade", "ativo"]
    )
    for dry_run in (True, False):
        timer.run(
            f"admin import, 5,000 agents ({'preview' if dry_run else 'import'})",
            lambda dry_run=dry_run: AgentResource().import_data(
                dataset,
                dry_run=dry_run,
                raise_errors=False,
                use_transactions=True,
                rollback_on_validation_errors=True,
                user=staff,
            ),
            lambda r: f"({dict((k, v) for k, v in r.totals.items() if v)})",
        )
    firm = User.objects.create(username="firma.representante", cpf=cpf(999_999))
    agent_rows = list(Agent.objects.values_list("acronym", flat=True)[:3000])
    registry_feed_apply(
        rows=[
            {
                "external_id": f"FIRM-{i}",
                "action": "create",
                "cpf": firm.cpf,
                "agent": a,
                "role": "represents",
                "valid_from": "2026-01-01",
            }
            for i, a in enumerate(agent_rows)
        ],  # fmt: skip
        by=staff,
    )
    factory = RequestFactory()

    def admin_get(model, view: str, path: str, *args, **params):
        request = factory.get(path, params)
        request.user = staff
        request.user.is_verified = lambda: True  # the admin's second factor (django-otp), passed
        request.session = {}
        request._messages = FallbackStorage(request)
        response = getattr(admin.site._registry[model], view)(request, *args)
        response.render()
        assert response.status_code == 200, response.status_code
        return response

    # Warm-up (templates compiled, caches filled): the figures are steady-state pages.
    admin_get(User, "change_view", "/admin/", str(staff.pk))
    admin_get(Representation, "changelist_view", "/admin/", q="warm")
    timer.run(
        "admin: user page of a firm with 3,000 representations",
        lambda: admin_get(User, "change_view", "/admin/", str(firm.pk)),
    )
    for term in ("solar", "silva", "CL12", "geração de energia"):
        timer.run(
            f"admin: representation search “{term}” (page and count)",
            lambda term=term: admin_get(Representation, "changelist_view", "/admin/", q=term),
            lambda r: f"({r.context_data['cl'].result_count} found)",
        )


def summary(result) -> str:
    return (
        f"(created {result.created}, changed {result.changed}, ended {result.ended}, "
        f"unchanged {result.unchanged}; permissions +{result.permissions_added} "
        f"−{result.permissions_removed})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--demo-agents", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/registry.md")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("registry_bench: set DATABASE_URL to a PostgreSQL server")

    load_before = os.getloadavg()[0]
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    timer = Timer()
    try:
        by = User.objects.create(username="registro.ccee")
        n = args.changes
        agents, users = timer.run(
            f"set-up: {n * 2 // 5:,} agents, {n * 3 // 5:,} users (bulk)",
            lambda: market(n * 2 // 5, n * 3 // 5, by),
        )
        rows = feed_creates(n, agents, users)
        timer.run(
            f"feed: {n:,} creates",
            lambda: registry_feed_apply(rows=rows, by=by, source="bench:1"),
            summary,
        )
        timer.run(
            "the same feed again (idempotent)",
            lambda: registry_feed_apply(rows=rows, by=by, source="bench:1"),
            summary,
        )
        mixed = feed_mixed(n, agents, users)
        timer.run(
            f"feed: {n:,} mixed (50 % change, 30 % end, 20 % create)",
            lambda: registry_feed_apply(rows=mixed, by=by, source="bench:2"),
            summary,
        )
        # Expiry: 5,000 representations whose end date passes tomorrow.
        ids = list(
            Representation.objects.filter(valid_until__isnull=True).values_list("pk", flat=True)[
                :5000
            ]
        )
        Representation.objects.filter(pk__in=ids).update(valid_until=timezone.localdate())
        tomorrow = timezone.localdate() + timedelta(days=1)
        timer.run(
            "expire_representations: 5,000 ending by date",
            lambda: expire_representations(today=tomorrow),
            lambda pairs: f"({pairs} pairs re-derived)",
        )
        totals = (
            f"{Representation.objects.count():,} representations, "
            f"{AgentUserObjectPermission.objects.count():,} permission rows, "
            f"{Representation.history.count():,} history rows"
        )
        print(totals)
        # The demo market, from an empty registry, through the same bulk path.
        with connection.cursor() as cursor:  # a throw-away database: empty it at once
            cursor.execute(
                "TRUNCATE prudencial_representation, prudencial_agent, prudencial_user, "
                "prudencial_historicalrepresentation, prudencial_historicalagent CASCADE"
            )
        timer.run(
            f"load_demo_market --agents {args.demo_agents:,}",
            lambda: call_command(
                "load_demo_market", agents=args.demo_agents, verbosity=0, stdout=io.StringIO()
            ),
            lambda _r: (
                f"({Agent.objects.count():,} agents, {User.objects.count():,} users, "
                f"{Representation.objects.count():,} representations)"
            ),
        )
        admin_scale(timer)
        pg_version = connection.pg_version
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)

    lines = [
        "# Registry bench (bench/registry_bench.py)",
        "",
        f"{platform.node()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} CPUs · Python {platform.python_version()} · PostgreSQL "
        f"{pg_version // 10000} · load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after",
        "",
        "| step | time (s) | Python CPU (s) | queries | result |",
        "|---|---:|---:|---:|---|",
        *[f"| {label} | {t:.2f} | {c:.2f} | {q} | {note} |" for label, t, c, q, note in timer.rows],
        "",
        totals,
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
