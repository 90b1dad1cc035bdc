"""The host refuses at once what the enclave would refuse at the deadline: every parameter set
the host accepts (through parameters_save, on a real week) is accepted by the enclave's parser,
and every one it refuses is refused naming a field. Plus the worked example of
docs/domain.md from the host's payload through the enclave's checks to the published figures."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave_bridge.enclave.checks import check_agents
from enclave_bridge.enclave.compute import parse_parameters
from enclave_bridge.enclave.keys import KeyRing
from prudencial.models import ParameterBucket
from prudencial.services.parameters import (
    PARAMETER_FIELDS,
    parameters_payload,
    parameters_save,
)
from prudencial.services.weeks import week_open
from tests.enclave.payloads import encrypt
from tests.factories import (
    PLD_CAP,
    PLD_FLOOR,
    WeekFactory,
    correlation_matrix,
    default_buckets,
    week_with_parameters,
)

pytestmark = pytest.mark.django_db

_BUCKET_FIELD = (
    r"buckets(\[\d\](\.(volatility|forward_price_(se|s|ne|n)|stress_price_(long|short)))?)?"
)
FIELD_NAME = re.compile("^(" + "|".join([*PARAMETER_FIELDS, _BUCKET_FIELD]) + ")$")


class Refused(Exception):
    """Rolls an accepted example back, carrying its payload out of the savepoint."""


decimals = lambda low, high, places: st.decimals(  # noqa: E731
    min_value=Decimal(low), max_value=Decimal(high), places=places, allow_nan=False
)
bucket_values = st.fixed_dictionaries(
    {
        "volatility": st.one_of(decimals("0.01", "0.2", 6), decimals("-0.1", "1.5", 6)),
        "forward_price_se": st.one_of(decimals("60", "700", 2), decimals("0", "1000", 2)),
        "forward_price_s": decimals("60", "700", 2),
        "forward_price_ne": decimals("60", "700", 2),
        "forward_price_n": decimals("60", "700", 2),
        "stress_price_long": decimals("0", "900", 2),
        "stress_price_short": decimals("0", "900", 2),
    }
)
field_values = st.fixed_dictionaries(
    {},
    optional={
        "pld_floor": st.sampled_from([PLD_FLOOR, Decimal("0"), Decimal("61.07"), Decimal("800")]),
        "pld_cap": st.sampled_from([PLD_CAP, Decimal("500"), Decimal("785.27")]),
        "confidence": st.one_of(decimals("0.5", "0.999", 4), st.sampled_from([Decimal(0), 1])),
        "liquidation_days": st.integers(0, 10),
        "k": decimals("0", "12", 4),
        "theta": decimals("0", "12", 4),
        "correlation": st.sampled_from(
            [
                correlation_matrix(0.5),
                correlation_matrix(1.0),
                [[1.0, 0.2], [0.2, 1.0]],
                [[1.0 if i == j else 0.99 * (-1) ** (i + j) for j in range(7)] for i in range(7)],
            ]
        ),
        "first_month": st.sampled_from([date(2023, 2, 1), date(2024, 2, 1)]),
    },
)


@pytest.fixture
def week():
    return week_with_parameters()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fields=field_values,
    buckets=st.dictionaries(st.integers(0, 6), bucket_values, max_size=3),
)
def test_what_the_host_accepts_the_enclave_accepts_and_refusals_name_a_field(week, fields, buckets):
    try:
        with transaction.atomic():
            parameters_save(week=week, fields=fields, buckets=buckets)
            raise Refused(parameters_payload(week.parameters.__class__.objects.get(week=week)))
    except Refused as accepted:
        parsed = parse_parameters(accepted.args[0])  # raises if the enclave would refuse
        assert parsed.week == week.code
    except ValidationError as refused:
        assert refused.message_dict, refused
        for key, messages in refused.message_dict.items():
            assert FIELD_NAME.match(key), key
            assert all(m.strip() for m in messages)


def test_a_zero_volatility_or_a_price_above_the_cap_is_refused_at_save(week):
    """parameters_update accepted both; the enclave refused them only at the deadline."""
    with pytest.raises(ValidationError) as info:
        parameters_save(week=week, fields={}, buckets={0: {"volatility": Decimal("0")}})
    assert info.value.message_dict == {
        "buckets[0].volatility": ["deve ser maior que 0 e no máximo 1"]
    }
    with pytest.raises(ValidationError) as info, translation.override("en"):
        parameters_save(week=week, fields={}, buckets={2: {"forward_price_se": PLD_CAP + 1}})
    assert info.value.message_dict == {
        "buckets[2].forward_price_se": ["must lie between the PLD floor and the PLD cap"]
    }
    assert ParameterBucket.objects.get(parameters__week=week, index=0).volatility > 0


def test_opening_runs_the_enclaves_checks_and_names_the_field(week):
    # Written past the service (as an old row or a hand edit would be): the week must not open.
    ParameterBucket.objects.filter(parameters__week=week, index=3).update(volatility=0)
    with pytest.raises(ValidationError) as info:
        week_open(week=week)
    assert list(info.value.message_dict) == ["buckets[3].volatility"]
    week.refresh_from_db()
    assert week.status == "scheduled"


# --- the worked example of docs/domain.md, host → enclave → results -----------------------------

WORKED_PORTFOLIO = {  # a v2 payload (docs/formats.md): the worked example as contracts
    "schema": "prudencial/portfolio/v2",
    "agent": {"acronym": "CM47", "cnpj": "12345678000195"},
    "contracts": [
        {
            "bucket": 0,
            "side": "purchase",
            "contract_type": "fixed_price",
            "energy_type": "conventional",
            "submarket": "SE",
            "volume_mwm": 10.0,
            "amount_brl": 10 * 150.0 * 744,
        },
        {
            "bucket": 1,
            "side": "sale",
            "contract_type": "fixed_price",
            "energy_type": "conventional",
            "submarket": "SE",
            "volume_mwm": 5.0,
            "amount_brl": 5 * 160.0 * 720,
        },
        {
            "bucket": 2,
            "side": "purchase",
            "contract_type": "variable_price",
            "energy_type": "conventional",
            "submarket": "SE",
            "volume_mwm": 3.0,
            "amount_brl": 3 * 170.0 * 744,
        },
    ],  # fmt: skip
    "forecasts": [],
    "equity": {
        "equity_brl": 10_500_000.0,
        "goodwill_net_of_deferred_tax_brl": 0.0,
        "intangibles_brl": 500_000.0,
        "sector_stakes_brl": 0.0,
        "financial_stakes_brl": 0.0,
        "tax_credits_brl": 0.0,
    },
    "regulated_market_revenue_brl": 0.0,
}


@pytest.mark.parametrize(
    ("correlation", "var_total"),
    [(correlation_matrix(1.0), 430_035.23), (correlation_matrix(0.0), 260_425.31)],
    ids=["rho=1", "rho=identity"],
)
def test_worked_example_round_trip(correlation, var_total):
    week = WeekFactory(operation_start=date(2023, 3, 4), operation_end=date(2023, 3, 10))
    buckets = default_buckets()
    for i, (sigma, price) in enumerate([("0.05", 150), ("0.06", 160), ("0.07", 170)]):
        buckets[i]["volatility"] = Decimal(sigma)
        buckets[i]["forward_price_se"] = Decimal(price)
    parameters = parameters_save(
        week=week,
        fields={
            "first_month": date(2023, 3, 1),  # h = 744, 720, 744
            "correlation": correlation,
            "pld_floor": PLD_FLOOR,
            "pld_cap": PLD_CAP,
            "liquidation_days": 5,
        },
        buckets=buckets,
    )
    payload = parameters_payload(parameters)
    assert [b["hours"] for b in payload["buckets"][:3]] == [744, 720, 744]

    keys = KeyRing.generate()
    token = encrypt(dict(WORKED_PORTFOLIO, week=week.code), keys.current.public_jwk())
    agent = {"acronym": "CM47", "cnpj": "12345678000195"}
    [entry] = check_agents(keys, [(0, agent, token, None)], parse_parameters(payload))

    assert entry["verdicts"]["portfolio"]["status"] == "accepted", entry["verdicts"]
    pla = 10_000_000.0  # 10.5 million of equity less 0.5 million of intangibles
    # RES_FIN = 5·160·720 − 10·150·744 − 3·170·744 = −919,440 (K = θ = 0: RWA = VaR_total).
    assert entry["leverage"]["fa_risk"] == pytest.approx(var_total / pla, abs=1e-9)
    assert entry["leverage"]["fa"] == pytest.approx((var_total + 919_440.0) / pla, abs=1e-9)


def test_the_import_resolves_agents_once_per_file_among_those_the_user_may_see(superuser):
    """One query for every acronym of the file (not one per row), through agent_list."""
    import tablib

    from prudencial.resources import RepresentationResource
    from tests.factories import AgentFactory, UserFactory, make_cpf

    agents = [AgentFactory() for _ in range(6)]
    people = [UserFactory() for _ in range(6)]
    rows = [
        (a.acronym.lower(), make_cpf_masked(p.cpf), "controls", "01/01/2024", "")
        for a, p in zip(agents, people, strict=True)
    ]
    dataset = tablib.Dataset(
        *rows, headers=["agente", "usuario", "papel", "valida_desde", "valida_ate"]
    )
    resource = RepresentationResource()
    with CaptureQueriesContext(connection) as queries:
        resource.before_import(dataset, user=superuser)
    agent_queries = [q for q in queries.captured_queries if 'FROM "prudencial_agent"' in q["sql"]]
    assert len(agent_queries) == 1
    assert resource.fields["agent"].widget.clean(agents[0].acronym.lower()) == agents[0]
    assert resource.fields["user"].widget.clean(make_cpf_masked(people[1].cpf)) == people[1]

    nobody = UserFactory(cpf=make_cpf(900))  # sees no agent: the import finds none for them
    resource.before_import(dataset, user=nobody)
    with pytest.raises(ValueError, match="não encontrado"):
        resource.fields["agent"].widget.clean(agents[0].acronym)


def make_cpf_masked(cpf: str) -> str:
    return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}"


def test_every_domain_rule_is_worded_for_the_host_in_pt_br_and_english():
    from prudencial.domain.errors import RULES
    from prudencial.services.parameters import RULE_MESSAGES

    assert set(RULE_MESSAGES) == set(RULES)
    for code, message in RULE_MESSAGES.items():
        with translation.override("pt-br"):
            portuguese = str(message)
        with translation.override("en"):
            english = str(message)
        assert english != portuguese, f"{code} has no English translation"


def test_the_price_history_is_a_week_parameter_checked_by_the_enclaves_own_rule(week):
    """The weekly PLD the network model bootstraps from is stored with the week, shipped in
    its payload, and refused at save by the same rule the enclave applies to the parameters."""
    from enclave_bridge.enclave.compute import parse_network
    from enclave_bridge.wire.protocol import ProtocolError

    assert parameters_payload(week.parameters)["pld_history"] is None  # not set yet
    parameters_save(week=week, fields={"pld_history": [120.5, 300.0, 80.0]}, buckets={})
    payload = parameters_payload(week.parameters.__class__.objects.get(week=week))
    assert payload["pld_history"] == [120.5, 300.0, 80.0]
    assert parse_parameters(payload).week == week.code
    assert parse_parameters(payload).pld_history == (120.5, 300.0, 80.0)
    for bad in ([-1.0], [1e6], ["120"], [float("nan")], [0.0] * 10_001):
        with pytest.raises(ValidationError) as info:
            parameters_save(week=week, fields={"pld_history": bad}, buckets={})
        assert list(info.value.message_dict) == ["pld_history"], bad
        with pytest.raises(ProtocolError) as refused:
            parse_parameters(dict(payload, pld_history=bad))
        assert "parameters.pld_history must list 1 to 10000 weekly prices" in refused.value.message
    # Blank in the admin is "not set yet": stored empty, shipped as None, and the enclave
    # refuses to compute the network without it rather than guess a series.
    parameters_save(week=week, fields={"pld_history": []}, buckets={})
    assert (
        parameters_payload(week.parameters.__class__.objects.get(week=week))["pld_history"] is None
    )
    assert parse_parameters(dict(payload, pld_history=None)).pld_history is None
    with pytest.raises(ProtocolError):  # the history is not a network option any more
        parse_network({"pld_history": [1.0]})
