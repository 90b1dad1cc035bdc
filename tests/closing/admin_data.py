"""A stored closing for the admin and export tests: what the closing writes once the enclave's
signed results are verified (its rows, made here directly), for four agents:

- SENT: computed, sent by the agent, FA 1.5 (in the week's alert band);
- HIDDEN: computed, not sent, its FA the canary (staff must never see it);
- GONE: computed, then cancelled by the agent (figures hidden too);
- MISSING: eligible, no accepted portfolio.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

CANARY_FA = 7.654321
CANARY_TEXTS = ("7,654321", "7.654321", "7,6543", "7.6543")


def make_closing(
    *, state: str = "done", sequence: int = 1, week=None, deadline_ago=timedelta(days=3)
):
    from prudencial.closing.models import Closing, CommunityResult, LeverageDecision, LeverageResult
    from prudencial.models import Week, WeekStatus
    from tests.factories import AgentFactory, UserFactory
    from tests.submissions.conftest import open_week

    if week is None:
        from tests import factories

        week = open_week("202303001", deadline_in=timedelta(hours=1))
        factories.save_parameters(
            week=week,
            buckets=factories.default_buckets(),
            first_month=factories.code_month(week),
            correlation=factories.correlation_matrix(),
            pld_floor=factories.PLD_FLOOR,
            pld_cap=factories.PLD_CAP,
        )
        now = timezone.now()
        Week.objects.filter(pk=week.pk).update(
            status=WeekStatus.COMPUTED,
            opens_at=now - deadline_ago - timedelta(days=2),
            deadline=now - deadline_ago,
        )
        week.refresh_from_db()
    from prudencial.services.parameters import parameters_payload

    week.refresh_from_db()
    closing = Closing.objects.create(
        week=week,
        parameters=parameters_payload(week.parameters),
        sequence=sequence,
        state=state,
        is_current=state == "done",
        agents_total=4,
        agents_done=4 if state == "done" else 2,
        stage_times={"gather": 0.5, "ship": 1.25, "compute": 3.0, "verify": 0.25, "store": 0.5},
        network_source="counterparties",
        network={
            "network_mean": 0.125,
            "n_agents": 4,
            "n_communities": 2,
            "n_propagators": 1,
            "communities": [],
        },
        finished_at=timezone.now() if state == "done" else None,
    )
    agents = {
        name: AgentFactory(acronym=name, agent_class=cls)
        for name, cls in (
            ("SENT", "trader"),
            ("HIDDEN", "trader"),
            ("GONE", "generator"),
            ("MISSING", "generator"),
        )
    }
    agent_user = UserFactory(username="agente.decide")

    def result(name: str, status: str, fa: float | None):
        return LeverageResult.objects.create(
            closing=closing,
            agent=agents[name],
            status=status,
            fa=fa,
            fa_risk=None if fa is None else fa / 2,
            res_fin_over_pla=None if fa is None else 0.01,
            concentration_largest=None if fa is None else 0.1,
            concentration_top_five=None if fa is None else 0.3,
            var_share_by_bucket=None,
            network={}
            if fa is None
            else {
                "cvar_intrinsic": 0.05,
                "cvar_propagated": 0.2 if name == "SENT" else CANARY_FA,
                "cvar_total": 0.25,
                "community": 1,
                "community_rank": 1,
                "n_communities": 2,
            },
            error={},
        )

    results = {
        "SENT": result("SENT", "computed", 1.5),
        "HIDDEN": result("HIDDEN", "computed", CANARY_FA),
        "GONE": result("GONE", "computed", CANARY_FA),
        "MISSING": result("MISSING", "missing", None),
    }
    LeverageDecision.objects.create(result=results["SENT"], action="sent", by=agent_user)
    LeverageDecision.objects.create(result=results["GONE"], action="sent", by=agent_user)
    LeverageDecision.objects.create(
        result=results["GONE"], action="cancelled", reason="revisão interna", by=agent_user
    )
    for community, rank, size, prop in ((1, 1, 3, 1), (2, 2, 1, 0)):
        CommunityResult.objects.create(
            closing=closing,
            community=community,
            rank=rank,
            size=size,
            propagators=prop,
            mean_cvar_intrinsic=0.05 * rank,
            mean_cvar_propagated=0.2 / rank,
            mean_cvar_total=0.25 / rank,
            members=[],
        )
    return closing, results, agents
