"""Each rule of the regulation has one definition left (prudencial/domain): a search of the
host and the enclave (migrations and the domain package aside) finds none of the old copies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = ("prudencial", "enclave_bridge")

OLD_COPIES = {
    "bucket count": r"\b(N_BUCKETS|BUCKET_COUNT)\s*=\s*\d",
    "submarkets": r"""\(\s*["']SE["'],\s*["']S["'],\s*["']NE["'],\s*["']N["']\s*\)""",
    "submarket aliases": r"""["']SECO["']\s*:""",
    "energy types": r"""\(\s*["']conventional["'],\s*["']incentivized["']\s*\)""",
    "energy type aliases": r"""["']incentivada["']\s*:""",
    "network classes": r"""\(\s*["']CS["'],\s*["']GE["'],\s*["']CM["']\s*\)""",
    "network class guessed from the acronym": r"acronym\"?\]?\[:2\]",
    "CNPJ weights": r"_CNPJ_WEIGHTS|\(5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2\)",
    "CNPJ check digits": r"def (cnpj_is_valid|cnpj_check_digits|cpf_check_digits|_mod11_digit)\b",
    "CNPJ mask": r"""c not in ["']\.-/ ["']|\[\.\\-/\\s\]""",
    "acronym upper-casing": r"acronym.*\.strip\(\)\.upper\(\)|\.strip\(\)\.upper\(\).*acronym",
    "week-code pattern": r"0\[1-9\]\|1\[0-2\]",
    "month labels": r"""["']JAN["'],\s*["']FEV["']""",
    "month hours": r"monthrange\(|frozenset\(\{672",
    "cadence table lookup": r"PRUDENCIAL_CADENCE_BY_CLASS\.get\(",
    "cadence derived outside the agent services": r"reporting_cadence\s*=\s*cadence_for_class",
    "in force on day d": r"valid_until__gte=today|valid_until >= today|valid_from <= today",
    "frozen-week refusal": r"def _refuse_frozen|já foi calculada; seus parâmetros",
    "plausibility of the week's parameters": r"def _check_plausible|MAX_K_THETA\s*=",
    "packaged PLD series as a fallback": r"pld_history_2017\(\)",
}
# Where a pattern is the one definition, or legitimately the same words.
ALLOWED = {
    "packaged PLD series as a fallback": {
        "prudencial/risk/pld.py",
        "prudencial/risk_tools/synthetic.py",
        # the demo market's weeks get the packaged series as their stored price history
        "prudencial/management/commands/load_demo_market.py",
    },
    "frozen-week refusal": {"prudencial/services/parameters.py"},
    "cadence derived outside the agent services": {"prudencial/services/agents.py"},
}


def _sources():
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel or rel.startswith("prudencial/domain/"):
                continue
            yield rel, path.read_text(encoding="utf-8")


@pytest.mark.parametrize("rule", OLD_COPIES)
def test_no_copy_of_the_rule_is_left(rule):
    pattern = re.compile(OLD_COPIES[rule])
    found = [
        f"{rel}:{n}: {line.strip()}"
        for rel, text in _sources()
        if rel not in ALLOWED.get(rule, set())
        for n, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    ]
    assert not found, f"{rule} is defined again outside prudencial/domain:\n" + "\n".join(found)


# Rules whose pattern matches their one definition: a search that finds nothing anywhere
# would prove nothing, so these must still be found in the domain (or their allowed place).
FOUND_IN_ONE_PLACE = (
    "bucket count",
    "submarkets",
    "submarket aliases",
    "energy types",
    "energy type aliases",
    "CNPJ weights",
    "CNPJ check digits",
    "week-code pattern",
    "month labels",
    "frozen-week refusal",
    "plausibility of the week's parameters",
)


@pytest.mark.parametrize("rule", FOUND_IN_ONE_PLACE)
def test_the_pattern_finds_the_one_definition(rule):
    pattern = re.compile(OLD_COPIES[rule])
    places = [ROOT / "prudencial" / "domain", *(ROOT / p for p in ALLOWED.get(rule, ()))]
    files = [f for p in places for f in ([p] if p.is_file() else sorted(p.rglob("*.py")))]
    assert any(pattern.search(f.read_text(encoding="utf-8")) for f in files), rule
