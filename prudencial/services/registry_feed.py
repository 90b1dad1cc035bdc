"""The registry feed: CCEE's registry platform creates, changes and ends representations.

A feed is a list of changes, one per row (docs/registry.md): ``external_id`` (the registry's id
of the representation), ``action`` (create | change | end), ``cpf`` of the user, ``agent``
(CNPJ or acronym), ``role``, ``valid_from``, ``valid_until``, and optionally ``name`` and
``email`` of a person the platform does not know yet.

The whole feed is validated before anything is written: every row's fields, then the references
(CPFs, agents, external ids, each resolved in one query for the file), then the rules between
rows (periods in order, no overlap with the same user, agent and role). Any error refuses the
feed whole, each error naming the row, the field and the rule. A valid feed is applied in one
transaction through `representations_bulk_write` (multi-row writes, history rows saying who sent
the feed, permissions re-derived in bulk).

Idempotent: the rows of each external id are folded, in order, into the state the registry wants,
starting from what is stored; only representations whose stored state differs are written, so
the same feed applied twice changes nothing the second time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from prudencial.domain.identifiers import (
    cnpj_problem,
    cpf_problem,
    normalize_acronym,
    normalize_cnpj,
    normalize_cpf,
)
from prudencial.models import Agent, Representation, RepresentationRole, User
from prudencial.services.representations import (
    BULK_BATCH,
    PAIR_CHUNK,
    representations_bulk_write,
    representations_overlapping,
)

ACTIONS = ("create", "change", "end")
FIELDS = (
    "external_id",
    "action",
    "cpf",
    "agent",
    "role",
    "valid_from",
    "valid_until",
    "name",
    "email",
)
REQUIRED_TO_CREATE = ("cpf", "agent", "role", "valid_from")
EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")
MAX_ERRORS = 200  # a feed wrong everywhere is refused with the first 200 errors, not 50,000
DELETED = object()  # the folded state of a representation cancelled before it started

# Rule codes (stable, for the registry's software) and their pt-BR wording.
RULES = {
    "required": _("Campo obrigatório."),
    "unknown_field": _("Campo desconhecido."),
    "format": _("Formato inválido."),
    "choice": _("Valor não aceito."),
    "check_digits": _("Dígitos verificadores inválidos."),
    "repeated": _("Dígitos todos iguais."),
    "date": _("Data inválida: use aaaa-mm-dd."),
    "unknown_agent": _("Agente não encontrado (CNPJ ou sigla)."),
    "unknown_id": _("Representação desconhecida: nenhum create anterior com este external_id."),
    "immutable": _("Não pode mudar: a representação é de outro usuário ou agente."),
    "period_order": _("A data “válida até” não pode ser anterior à data “válida desde”."),
    "overlap": _("Já existe representação do mesmo usuário, agente e papel nesse período."),
    "cpf_in_use": _("O CPF pertence a um usuário sem CPF confirmado ou a outra conta."),
}


@dataclass(frozen=True)
class FeedError:
    """One reason a feed is refused: the row (1-based, as the file counts), the field, the rule
    code (RULES) and a message in the active language."""

    row: int
    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "rule": self.rule, "message": self.message}

    def __str__(self) -> str:
        return f"linha {self.row}, {self.field}: {self.message} [{self.rule}]"


class FeedRefused(Exception):
    """The feed was refused whole; nothing was written."""

    def __init__(self, errors: list[FeedError]):
        super().__init__("; ".join(str(e) for e in errors[:5]))
        self.errors = errors


@dataclass
class FeedResult:
    rows: int = 0
    created: int = 0
    changed: int = 0
    ended: int = 0
    removed: int = 0
    unchanged: int = 0
    users_created: int = 0
    permissions_added: int = 0
    permissions_removed: int = 0
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Row:
    number: int
    external_id: str
    action: str
    cpf: str = ""
    agent: str = ""
    role: str = ""
    valid_from: date | None = None
    valid_until: date | None = None
    has_until: bool = False
    name: str = ""
    email: str = ""


@dataclass
class _State:
    """What one external id should look like; `row` is the last row that shaped it."""

    cpf: str
    agent_key: str
    role: str
    valid_from: date
    valid_until: date | None
    row: int
    removed: bool = False
    rows: list[int] = field(default_factory=list)


# --- reading a file ---------------------------------------------------------------------------


def feed_read(content: bytes | str, *, fmt: str) -> list[dict[str, Any]]:
    """The rows of a feed file: ``json`` (a list of objects, or {"changes": [...]}) or ``csv``
    (a header line with the field names; ``,`` or ``;``). A file that cannot be read at all is
    refused as row 0."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeedRefused(
                [FeedError(0, "file", "format", _("JSON inválido: %(e)s") % {"e": exc.msg})]
            ) from None
        if isinstance(data, dict) and set(data) == {"changes"}:
            data = data["changes"]
        if not isinstance(data, list):
            raise FeedRefused(
                [FeedError(0, "file", "format", _("Esperada uma lista de mudanças."))]
            )
        return data
    if fmt == "csv":
        sample = text[:4096]
        delimiter = ";" if sample.count(";") > sample.count(",") else ","
        return list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    raise ValueError(f"unknown feed format {fmt!r}")


def feed_source(content: bytes | str) -> str:
    """A short fingerprint of a feed, recorded as the history's change reason."""
    data = content.encode() if isinstance(content, str) else content
    return "feed:" + hashlib.sha256(data).hexdigest()[:16]


# --- validation -------------------------------------------------------------------------------


def _parse_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _parse_row(number: int, raw: Any, errors: list[FeedError]) -> _Row | None:
    def fail(field_name: str, rule: str, message: str | None = None) -> None:
        errors.append(FeedError(number, field_name, rule, message or str(RULES[rule])))

    if not isinstance(raw, dict):
        fail("row", "format", _("Cada mudança é um objeto com os campos do feed."))
        return None
    before = len(errors)
    for name in raw:
        if name not in FIELDS:
            fail(str(name)[:40], "unknown_field")
    external_id = _text(raw.get("external_id"))
    if not external_id:
        fail("external_id", "required")
    elif not EXTERNAL_ID.match(external_id):
        fail("external_id", "format", _("Até 64 letras, dígitos, ponto, traço, dois-pontos."))
    action = _text(raw.get("action")).lower()
    if not action:
        fail("action", "required")
    elif action not in ACTIONS:
        fail("action", "choice", _("Use create, change ou end."))
    row = _Row(number=number, external_id=external_id, action=action)
    cpf = normalize_cpf(_text(raw.get("cpf")))
    if cpf:
        problem = cpf_problem(cpf)
        if problem:
            fail("cpf", problem if problem in RULES else "format")
        row.cpf = cpf
    agent = _text(raw.get("agent"))
    if agent:
        cnpj = normalize_cnpj(agent)
        if len(cnpj) == 14 and cnpj_problem(cnpj) is None:
            row.agent = "cnpj:" + cnpj
        elif re.fullmatch(r"[0-9./\-\s]{14,18}", agent):
            fail("agent", "check_digits", _("CNPJ inválido."))
        elif len(agent) > 20:
            fail("agent", "format", _("Informe o CNPJ ou a sigla (até 20 caracteres)."))
        else:
            row.agent = "acronym:" + normalize_acronym(agent)
    role = _text(raw.get("role")).lower()
    if role:
        if role not in RepresentationRole.values:
            fail(
                "role",
                "choice",
                _("Use %(roles)s.") % {"roles": ", ".join(RepresentationRole.values)},
            )
        row.role = role
    for name in ("valid_from", "valid_until"):
        value = raw.get(name)
        if _text(value):
            parsed = _parse_date(value)
            if parsed is None:
                fail(name, "date")
            setattr(row, name, parsed)
            if name == "valid_until":
                row.has_until = True
    row.name = _text(raw.get("name"))[:150]
    row.email = _text(raw.get("email"))[:254]
    if action == "create":
        for name in REQUIRED_TO_CREATE:
            if not getattr(row, name) and not any(
                e.row == number and e.field == name for e in errors
            ):
                fail(name, "required")
    if action == "change" and not (row.role or row.valid_from or row.has_until):
        fail("role", "required", _("Um change altera role, valid_from ou valid_until."))
    return row if len(errors) == before else None


def _resolve_agents(keys: set[str]) -> dict[str, int]:
    cnpjs = [k[5:] for k in keys if k.startswith("cnpj:")]
    acronyms = [k[8:] for k in keys if k.startswith("acronym:")]
    found: dict[str, int] = {}
    for chunk_start in range(0, max(len(cnpjs), len(acronyms)), PAIR_CHUNK):
        c = cnpjs[chunk_start : chunk_start + PAIR_CHUNK]
        a = acronyms[chunk_start : chunk_start + PAIR_CHUNK]
        for pk, cnpj, acronym in Agent.objects.filter(Q(cnpj__in=c) | Q(acronym__in=a)).values_list(
            "pk", "cnpj", "acronym"
        ):
            found["cnpj:" + cnpj] = pk
            found["acronym:" + acronym] = pk
    return found


def _in_chunks(model_filter: Callable[[list], Iterable], values: Iterable) -> list:
    values = sorted(values)
    out: list = []
    for start in range(0, len(values), PAIR_CHUNK):
        out.extend(model_filter(values[start : start + PAIR_CHUNK]))
    return out


def registry_feed_apply(
    *,
    rows: list[Any],
    by: User | None,
    source: str = "",
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FeedResult:
    """Validate the feed whole, then apply it in one transaction (see the module docstring).
    Raises FeedRefused, with every error found (up to MAX_ERRORS), when any row is wrong."""
    today = today or timezone.localdate()
    errors: list[FeedError] = []
    parsed: list[_Row] = []
    for i, raw in enumerate(rows, start=1):
        row = _parse_row(i, raw, errors)
        if row is not None:
            parsed.append(row)
        if len(errors) >= MAX_ERRORS:
            raise FeedRefused(errors)
    if progress:
        progress(len(rows) // 4, len(rows))

    # References, one query each for the whole feed.
    ids = {r.external_id for r in parsed}
    stored: dict[str, Representation] = {
        rep.external_id: rep
        for rep in _in_chunks(
            # The user's CPF as a column, not a User object per row (50,000 rows).
            lambda chunk: Representation.objects.filter(external_id__in=chunk).annotate(
                feed_cpf=F("user__cpf")
            ),
            ids,
        )
    }
    cancelled = set(
        _in_chunks(
            lambda chunk: Representation.history.filter(
                external_id__in=chunk, history_type="-"
            ).values_list("external_id", flat=True),
            ids - set(stored),
        )
    )
    agent_ids = _resolve_agents({r.agent for r in parsed if r.agent})
    cpfs = {r.cpf for r in parsed if r.cpf and r.action == "create"}
    users: dict[str, User] = {
        u.cpf: u for u in _in_chunks(lambda chunk: User.objects.filter(cpf__in=chunk), cpfs)
    }

    # Fold each external id's rows, in order, starting from what is stored.
    states: dict[str, _State | None] = {}
    for ext, rep in stored.items():
        states[ext] = _State(
            cpf=rep.feed_cpf or "",
            agent_key=f"id:{rep.agent_id}",
            role=rep.role,
            valid_from=rep.valid_from,
            valid_until=rep.valid_until,
            row=0,
        )
    new_people: dict[str, _Row] = {}
    for row in parsed:

        def fail(field_name: str, rule: str, row: _Row = row) -> None:
            errors.append(FeedError(row.number, field_name, rule, str(RULES[rule])))

        agent_key = ""
        if row.agent:
            if row.agent not in agent_ids:
                fail("agent", "unknown_agent")
                continue
            agent_key = f"id:{agent_ids[row.agent]}"
        state = states.get(row.external_id)
        if row.action == "create":
            if row.cpf not in users:
                new_people.setdefault(row.cpf, row)
            if (
                state is not None
                and not state.removed
                and (state.cpf != row.cpf or state.agent_key != agent_key)
            ):
                fail("cpf" if state.cpf != row.cpf else "agent", "immutable")
                continue
            states[row.external_id] = _State(
                cpf=row.cpf,
                agent_key=agent_key,
                role=row.role,
                valid_from=row.valid_from,
                valid_until=row.valid_until,
                row=row.number,
            )
            continue
        if state is None or state.removed:
            if state is None and row.external_id in cancelled and row.action == "end":
                continue  # ended before it started, in an earlier feed: nothing left to do
            fail("external_id", "unknown_id")
            continue
        if (row.cpf and row.cpf != state.cpf) or (agent_key and agent_key != state.agent_key):
            fail("cpf" if row.cpf and row.cpf != state.cpf else "agent", "immutable")
            continue
        state.row = row.number
        if row.action == "change":
            state.role = row.role or state.role
            state.valid_from = row.valid_from or state.valid_from
            if row.has_until:
                state.valid_until = row.valid_until
        else:  # end: the last day in force; default yesterday, so access ends today
            last_day = row.valid_until if row.has_until else today - timedelta(days=1)
            if state.valid_until is not None and state.valid_until <= last_day:
                continue  # already ends by then: an end never prolongs
            if last_day < state.valid_from:
                state.removed = True  # cancelled before it started
            else:
                state.valid_until = last_day
        if len(errors) >= MAX_ERRORS:
            raise FeedRefused(errors)

    # Compare with what is stored; build the writes.
    creates: list[Representation] = []
    updates: list[Representation] = []
    deletes: list[Representation] = []
    unchanged = 0
    ended = 0
    people: list[User] = []
    for cpf, row in new_people.items():
        first, _sep, last = row.name.partition(" ")
        person = User(
            username=cpf,
            cpf=cpf,
            first_name=first[:150],
            last_name=last[:150],
            email=row.email,
            password=make_password(None),
        )
        people.append(person)
        users[cpf] = person
    provisional = {p.cpf: -(i + 1) for i, p in enumerate(people)}
    taken = set(
        _in_chunks(
            lambda chunk: User.objects.filter(username__in=chunk).values_list(
                "username", flat=True
            ),
            [p.username for p in people],
        )
    )
    for person in people:
        if person.username in taken:
            errors.append(
                FeedError(
                    new_people[person.cpf].number, "cpf", "cpf_in_use", str(RULES["cpf_in_use"])
                )
            )
    for ext, state in states.items():
        rep = stored.get(ext)
        if state.removed:
            if rep is not None:
                deletes.append(rep)
            continue
        if state.valid_until is not None and state.valid_until < state.valid_from:
            errors.append(
                FeedError(state.row, "valid_until", "period_order", str(RULES["period_order"]))
            )
            continue
        if rep is None:
            candidate = Representation(
                external_id=ext,
                user_id=users[state.cpf].pk or provisional[state.cpf],
                agent_id=int(state.agent_key[3:]),
                role=state.role,
                valid_from=state.valid_from,
                valid_until=state.valid_until,
            )
            candidate._feed_row = state.row
            candidate._feed_cpf = state.cpf
            creates.append(candidate)
            continue
        if (rep.role, rep.valid_from, rep.valid_until) == (
            state.role,
            state.valid_from,
            state.valid_until,
        ):
            unchanged += 1
            continue
        if state.valid_until is not None and state.valid_until < today <= (
            rep.valid_until or date.max
        ):
            ended += 1
        rep.role, rep.valid_from, rep.valid_until = state.role, state.valid_from, state.valid_until
        rep._feed_row = state.row
        updates.append(rep)
    if errors:
        raise FeedRefused(errors[:MAX_ERRORS])
    # Overlaps (a new user, with a provisional negative id, has no stored representations).
    clashes = representations_overlapping([*creates, *updates])
    if clashes:
        raise FeedRefused(
            [
                FeedError(rep._feed_row, "valid_from", "overlap", str(RULES["overlap"]))
                for rep in sorted(clashes, key=lambda r: r._feed_row)
            ][:MAX_ERRORS]
        )
    if progress:
        progress(len(rows) // 2, len(rows))

    result = FeedResult(rows=len(rows), unchanged=unchanged, source=source)
    with transaction.atomic():
        if people:
            User.objects.bulk_create(people, batch_size=BULK_BATCH)  # sets pks (PG, SQLite)
            for rep in creates:
                if rep.user_id < 0:
                    rep.user_id = users[rep._feed_cpf].pk
        added, removed = representations_bulk_write(
            creates=creates, updates=updates, deletes=deletes, by=by, reason=source, today=today
        )
    result.created = len(creates)
    result.changed = len(updates) - ended
    result.ended = ended
    result.removed = len(deletes)
    result.users_created = len(people)
    result.permissions_added = added
    result.permissions_removed = removed
    if progress:
        progress(len(rows), len(rows))
    return result
