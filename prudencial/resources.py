"""Spreadsheet import and export (XLSX, CSV) of agents, representations and CCEE parameters.

Every row is validated as a whole model (full_clean: CNPJ/CPF check digits, choices, unique
keys) and saved through prudencial.services, so imported representations grant and revoke
permissions exactly as the admin does. The admin imports with rollback on any invalid row:
nothing is written unless every row is valid (see prudencial.admin.common.TransactionalImportMixin).

Column headers are Portuguese, as CCEE staff write them; values are accepted as codes
("trader") or labels ("Comercializador"), CNPJ/CPF with or without the mask, dates as
dd/mm/aaaa or aaaa-mm-dd, numbers with a decimal comma or point.

Parameters sheet (one row per week and bucket): the seven rows of a week carry the bucket's
volatility, forward prices per submarket and stress prices, and the bucket's row of the 7×7
correlation matrix (columns corr_m0 … corr_m6), which is how CCEE's support spreadsheet lays the
curve out. Week-level scalars (confidence, liquidation days, PLD floor and cap, K, θ) are few and
edited in the admin form, not in the sheet.
"""

from __future__ import annotations

import abc
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet, TextChoices
from django.utils import translation
from django.utils.translation import gettext as _
from import_export import fields, resources, widgets
from import_export.instance_loaders import CachedInstanceLoader

from prudencial.domain.identifiers import (
    format_cnpj,
    format_cpf,
    normalize_acronym,
    normalize_cpf,
)
from prudencial.domain.market import BUCKET_COUNT
from prudencial.models import (
    Agent,
    AgentClass,
    ParameterBucket,
    ReportingCadence,
    Representation,
    RepresentationRole,
    User,
    Week,
)
from prudencial.selectors import agent_list
from prudencial.services.agents import agents_bulk_write
from prudencial.services.parameters import BUCKET_FIELDS, parameters_save, refuse_frozen
from prudencial.services.representations import (
    representation_check_user,
    representations_bulk_write,
    representations_overlapping,
)

# --- widgets --------------------------------------------------------------------------------


class CNPJWidget(widgets.CharWidget):
    """Accepts 12.345.678/0001-95 or 12345678000195 (CnpjField normalises); exports the mask."""

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return format_cnpj(value) if value else ""


class AcronymWidget(widgets.CharWidget):
    """An acronym in its stored form (" cm47 " → "CM47"), so the file's keys match the rows
    the instance loader read in one query."""

    def clean(self, value: Any, row: dict | None = None, **kwargs: Any) -> str:
        return normalize_acronym(super().clean(value, row, **kwargs))


class ChoiceWidget(widgets.Widget):
    """A choice given by its code or by its label (pt-BR or the active language)."""

    def __init__(self, choices: type[TextChoices], *, blank: bool = False) -> None:
        super().__init__()
        self.choices = choices
        self.blank = blank

    def _by_key(self) -> dict[str, str]:
        """Codes and labels (active language and pt-BR) → code, built once per language
        (not once per cell: a 5,000-row file spent seconds translating labels)."""
        language = translation.get_language()
        cached = getattr(self, "_keys", {})
        if language not in cached:
            by_key: dict[str, str] = {}
            for choice in self.choices:
                by_key[choice.value.lower()] = choice.value
                by_key[str(choice.label).lower()] = choice.value
                with translation.override("pt-br"):
                    by_key[str(choice.label).lower()] = choice.value
            cached[language] = by_key
            self._keys = cached
        return cached[language]

    def clean(self, value: Any, row: dict | None = None, **kwargs: Any) -> str:
        text = str(value or "").strip()
        if not text:
            if self.blank:
                return ""
            raise ValueError(_("Campo obrigatório."))
        found = self._by_key().get(text.lower())
        if found is None:
            allowed = ", ".join(f"{c.value} ({c.label})" for c in self.choices)
            raise ValueError(
                _("Valor “%(value)s” desconhecido; aceitos: %(allowed)s.")
                % {"value": text, "allowed": allowed}
            )
        return found

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        if not value:
            return ""
        return str(self.choices(value).label)


class BrDateWidget(widgets.Widget):
    """dd/mm/aaaa (as CCEE writes dates) or ISO aaaa-mm-dd; spreadsheet date cells as they are.

    Django's default DATE_INPUT_FORMATS would read 03/02/2023 as March 2nd, hence this widget.
    """

    FORMATS = ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y")

    def clean(self, value: Any, row: dict | None = None, **kwargs: Any) -> date | None:
        if value is None or value == "":
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        text = str(value).strip()
        for fmt in self.FORMATS:
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
        raise ValueError(_("Data “%(value)s” inválida; use dd/mm/aaaa.") % {"value": text})

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return value.strftime("%d/%m/%Y") if value else ""


class NumberWidget(widgets.Widget):
    """Decimal with a comma or a point (1.234,56 and 1234.56 both read as 1234.56)."""

    def clean(self, value: Any, row: dict | None = None, **kwargs: Any) -> Decimal | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, int | float | Decimal):
            return Decimal(str(value))
        text = str(value).strip().replace(" ", "").replace("R$", "")
        if "," in text:
            text = text.replace(".", "").replace(",", ".")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise ValueError(_("Número “%(value)s” inválido.") % {"value": value}) from None

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> Any:
        return "" if value is None else value


class BooleanPtWidget(widgets.BooleanWidget):
    """Also sim/não, s/n, yes/no."""

    TRUE_VALUES = [*widgets.BooleanWidget.TRUE_VALUES, "sim", "Sim", "SIM", "s", "S", "yes"]
    FALSE_VALUES = [*widgets.BooleanWidget.FALSE_VALUES, "não", "Não", "NÃO", "nao", "n", "N", "no"]


class FileResolvedWidget(widgets.ForeignKeyWidget, metaclass=abc.ABCMeta):
    """A foreign key resolved once per file: `resolve` (called by the resource's before_import)
    runs one query for every value of the column and keeps the rows found; `clean` only looks
    them up, so a file of n rows costs one query, not n. A widget not prepared refuses."""

    def __init__(self, model: type[Model], field: str) -> None:
        super().__init__(model, field)
        self._found: dict[str, Model] | None = None

    @abc.abstractmethod
    def key(self, value: Any) -> str:
        """The normal form of a cell's value (the lookup key)."""

    @abc.abstractmethod
    def lookup(self, keys: set[str], user: User | None) -> dict[str, Model]:
        """One query for every key of the column, among what ``user`` may see."""

    def resolve(self, values: Iterable[Any], user: User | None) -> None:
        self._found = self.lookup({self.key(v) for v in values} - {""}, user)

    def found(self, key: str) -> Model | None:
        if self._found is None:
            raise RuntimeError("resolve() the file's column before cleaning its rows")
        return self._found.get(key)


class UserWidget(FileResolvedWidget):
    """A user named by CPF (with or without the mask) or by username."""

    def __init__(self) -> None:
        super().__init__(User, "username")

    def key(self, value: Any) -> str:
        text = str(value or "").strip()
        digits = normalize_cpf(text)
        return digits if re.fullmatch(r"[0-9]{11}", digits) else text

    def lookup(self, keys: set[str], user: User | None) -> dict[str, Model]:
        found: dict[str, Model] = {}
        for person in User.objects.filter(Q(cpf__in=keys) | Q(username__in=keys)):
            if person.username in keys:
                found[person.username] = person
            if person.cpf in keys:
                found[person.cpf] = person
        return found

    def clean(self, value: Any, row: dict | None = None, **kwargs: Any) -> User | None:
        text = str(value or "").strip()
        if not text:
            raise ValueError(_("Informe o CPF ou o nome de usuário."))
        person = self.found(self.key(text))
        if person is None:
            raise ValueError(
                _("Usuário “%(value)s” não encontrado (CPF ou nome de usuário).") % {"value": text}
            )
        return person

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        if value is None:
            return ""
        return format_cpf(value.cpf) if value.cpf else value.username


class AgentWidget(FileResolvedWidget):
    """An agent named by its acronym (sigla), among the agents the importing user may see
    (prudencial.selectors.agent_list, the one gate)."""

    def __init__(self) -> None:
        super().__init__(Agent, "acronym")

    def key(self, value: Any) -> str:
        return normalize_acronym(value)

    def lookup(self, keys: set[str], user: User | None) -> dict[str, Model]:
        return {a.acronym: a for a in agent_list(user=user).filter(acronym__in=keys)}

    def clean(self, value: Any, row: dict | None = None, **kwargs: Any) -> Agent | None:
        acronym = self.key(value)
        if not acronym:
            raise ValueError(_("Informe a sigla do agente."))
        agent = self.found(acronym)
        if agent is None:
            raise ValueError(_("Agente “%(value)s” não encontrado.") % {"value": acronym})
        return agent


def _adopt(target: Model, saved: Model) -> None:
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False


class SpreadsheetResource(resources.ModelResource):
    """Row errors name the spreadsheet column (``classe``), not the model attribute."""

    #: attribute → attributes whose errors only repeat it (a bad class leaves no cadence).
    dependent_errors: dict[str, tuple[str, ...]] = {}

    def validate_instance(
        self,
        instance: Model,
        import_validation_errors: dict | None = None,
        validate_unique: bool = True,
    ) -> None:
        errors = dict(import_validation_errors or {})
        for failed, dependents in self.dependent_errors.items():
            if failed in errors:
                for name in dependents:
                    errors.setdefault(name, [])
        super().validate_instance(instance, errors, validate_unique)

    def import_row(self, row: dict, instance_loader: Any, **kwargs: Any) -> Any:
        row_result = super().import_row(row, instance_loader, **kwargs)
        error = row_result.validation_error
        if error is not None and hasattr(error, "error_dict"):
            columns = {name: f.column_name for name, f in self.fields.items()}
            columns.update(
                {
                    f.attribute.split("__")[0]: f.column_name
                    for f in self.fields.values()
                    if f.attribute
                }
            )
            renamed: dict[str, list] = {}
            for key, messages in error.message_dict.items():
                if messages:
                    renamed.setdefault(columns.get(key, key), []).extend(messages)
            row_result.validation_error = ValidationError(renamed)
        return row_result


class DeferredWritesMixin:
    """Rows are collected by save_instance and written together by after_import, in bulk
    (services' bulk writes, with history). ``use_bulk`` also spares a savepoint per row; the
    library's own bulk writes are not used (they would skip history and the services)."""

    def bulk_create(self, *args: Any, **kwargs: Any) -> None:
        self.create_instances.clear()

    def bulk_update(self, *args: Any, **kwargs: Any) -> None:
        self.update_instances.clear()

    def bulk_delete(self, *args: Any, **kwargs: Any) -> None:
        self.delete_instances.clear()

    def save_instance(self, instance: Model, is_create: bool, row: dict, **kwargs: Any) -> None:
        self.before_save_instance(instance, row, **kwargs)
        self._pending.append((kwargs.get("row_number", 0), instance, is_create))
        self.after_save_instance(instance, row, **kwargs)


# --- agents ---------------------------------------------------------------------------------


class AgentResource(DeferredWritesMixin, SpreadsheetResource):
    """Agents by acronym: new acronyms are created, known ones updated.

    A blank periodicidade follows the class (settings.PRUDENCIAL_CADENCE_BY_CLASS). The file's
    agents are read in one query (CachedInstanceLoader), each row validated on its own (check
    digits, choices, the class rule), and the rows written together by agents_bulk_write, which
    checks unique acronyms and CNPJs for the whole file in one query and records the history.
    """

    acronym = fields.Field("acronym", "sigla", AcronymWidget())
    cnpj = fields.Field("cnpj", "cnpj", CNPJWidget())
    legal_name = fields.Field("legal_name", "razao_social", widgets.CharWidget())
    agent_class = fields.Field("agent_class", "classe", ChoiceWidget(AgentClass))
    reporting_cadence = fields.Field(
        "reporting_cadence", "periodicidade", ChoiceWidget(ReportingCadence, blank=True)
    )
    is_active = fields.Field("is_active", "ativo", BooleanPtWidget(), default=True)

    class Meta:
        model = Agent
        name = "Agentes"
        fields = ("acronym", "cnpj", "legal_name", "agent_class", "reporting_cadence", "is_active")
        import_id_fields = ("acronym",)
        instance_loader_class = CachedInstanceLoader
        use_bulk = True
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    dependent_errors = {"agent_class": ("reporting_cadence",)}

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        super().before_import(dataset, **kwargs)
        self._pending: list[tuple[int, Agent, bool]] = []

    def import_instance(self, instance: Agent, row: dict, **kwargs: Any) -> None:
        try:
            super().import_instance(instance, row, **kwargs)
        finally:
            if instance.is_active is None:
                instance.is_active = True

    def validate_instance(
        self,
        instance: Agent,
        import_validation_errors: dict | None = None,
        validate_unique: bool = True,
    ) -> None:
        """The row on its own (fields, the class rule; a blank periodicidade is the service's
        to derive): uniqueness is checked for the whole file at write time, in one query."""
        errors = dict(import_validation_errors or {})
        exclude = list(errors)
        if not instance.reporting_cadence:
            exclude.append("reporting_cadence")
        try:
            instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def after_import(self, dataset: Any, result: Any, **kwargs: Any) -> None:
        super().after_import(dataset, result, **kwargs)
        if result.has_errors() or result.has_validation_errors() or not self._pending:
            return  # the file is refused whole; the rows' errors say why
        ordered = [p for p in self._pending if p[2]] + [p for p in self._pending if not p[2]]
        try:
            agents_bulk_write(
                creates=[a for _, a, new in ordered if new],
                updates=[a for _, a, new in ordered if not new],
                by=kwargs.get("user"),
                reason=_bulk_reason(kwargs),
            )
        except ValidationError as exc:
            raise ValueError(
                " | ".join(
                    f"{_('Linha')} {ordered[int(i)][0]}: {m}"
                    for i, messages in exc.message_dict.items()
                    for m in messages
                )
            ) from None


def _bulk_reason(kwargs: dict) -> str:
    name = kwargs.get("file_name") or ""
    return f"import:{name}"[:100]


# --- representations ------------------------------------------------------------------------


class RepresentationResource(DeferredWritesMixin, SpreadsheetResource):
    """Representations keyed by agent, user, role and start; a known key updates its end date.

    New rows go through representation_grant (granted by the importing staff member), known ones
    through representation_update, so the guardian permissions follow at once.
    """

    agent = fields.Field("agent", "agente", AgentWidget())
    user = fields.Field("user", "usuario", UserWidget())
    role = fields.Field("role", "papel", ChoiceWidget(RepresentationRole))
    valid_from = fields.Field("valid_from", "valida_desde", BrDateWidget())
    valid_until = fields.Field("valid_until", "valida_ate", BrDateWidget())
    granted_by = fields.Field(
        "granted_by__username", "concedida_por", widgets.CharWidget(), readonly=True
    )

    class Meta:
        model = Representation
        name = "Representações"
        fields = ("agent", "user", "role", "valid_from", "valid_until", "granted_by")
        import_id_fields = ("agent", "user", "role", "valid_from")
        use_bulk = True
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def get_queryset(self) -> QuerySet[Representation]:
        return Representation.objects.select_related("agent", "user", "granted_by")

    def before_import(self, dataset: Any, **kwargs: Any) -> None:
        """Resolve the agent and user columns once for the whole file, and read the file's
        existing representations in one query."""
        super().before_import(dataset, **kwargs)
        user = kwargs.get("user")
        for name in ("agent", "user"):
            field = self.fields[name]
            column = dataset[field.column_name] if field.column_name in dataset.headers else []
            field.widget.resolve(column, user)
        agent_ids = {a.pk for a in (self.fields["agent"].widget._found or {}).values()}
        user_ids = {u.pk for u in (self.fields["user"].widget._found or {}).values()}
        self._existing = {
            (r.agent_id, r.user_id, r.role, r.valid_from): r
            for r in self.get_queryset().filter(agent_id__in=agent_ids, user_id__in=user_ids)
        }
        self._pending: list[tuple[int, Representation, bool]] = []

    def get_instance(self, instance_loader: Any, row: dict) -> Representation | None:
        """Unknown agents or users are errors of their column, not of the whole file; a known
        key is found among the rows read by before_import (no query per row)."""
        errors = {}
        key = {}
        for name in self.get_import_id_fields():
            field = self.fields[name]
            try:
                key[name] = field.clean(row)
            except (ValueError, KeyError) as exc:
                errors[name] = [str(exc).strip("'\"")]
        if errors:
            raise ValidationError(errors)
        return self._existing.get((key["agent"].pk, key["user"].pk, key["role"], key["valid_from"]))

    def validate_instance(
        self,
        instance: Representation,
        import_validation_errors: dict | None = None,
        validate_unique: bool = True,
    ) -> None:
        """The row on its own, without a query: fields, the period's order and the user's CPF
        (agent and user were resolved for the file); overlaps are checked for the whole file
        in after_import."""
        errors = dict(import_validation_errors or {})
        try:
            instance.full_clean(
                exclude=["user", "agent", "granted_by", *errors],
                validate_unique=False,
                validate_constraints=False,
            )
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if "user" not in errors:
            try:
                representation_check_user(instance.user)
            except ValidationError as exc:
                errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def after_import(self, dataset: Any, result: Any, **kwargs: Any) -> None:
        super().after_import(dataset, result, **kwargs)
        if result.has_errors() or result.has_validation_errors() or not self._pending:
            return  # the file is refused whole; the rows' errors say why
        row_of = {id(rep): number for number, rep, _new in self._pending}
        clashes = representations_overlapping([rep for _, rep, _new in self._pending])
        if clashes:
            message = _("Já existe representação do mesmo usuário, agente e papel nesse período.")
            raise ValueError(
                " | ".join(
                    f"{_('Linha')} {row_of[id(rep)]}: {message}"
                    for rep in sorted(clashes, key=lambda r: row_of[id(r)])
                )
            )
        representations_bulk_write(
            creates=[rep for _, rep, new in self._pending if new],
            updates=[rep for _, rep, new in self._pending if not new],
            by=kwargs.get("user"),
            reason=_bulk_reason(kwargs),
        )


# --- CCEE parameters --------------------------------------------------------------------------


def _bucket_index(value: Any) -> int:
    text = str(value or "").strip().upper().replace(" ", "")
    match = re.fullmatch(r"(?:M\+?)?([0-9]+)(?:\.0)?", text)
    if not match or int(match.group(1)) >= BUCKET_COUNT:
        raise ValueError(
            _("Bucket “%(value)s” inválido; use M+0 a M+%(last)s.")
            % {"value": value, "last": BUCKET_COUNT - 1}
        )
    return int(match.group(1))


class BucketIndexWidget(widgets.Widget):
    def clean(self, value: Any, row: dict | None = None, **kwargs: Any) -> int:
        return _bucket_index(value)

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        return f"M+{value}"


CORRELATION_COLUMNS = tuple(f"corr_m{j}" for j in range(BUCKET_COUNT))


class ParameterBucketResource(SpreadsheetResource):
    """One row per week and bucket (see the module docstring). Rows update the week's existing
    buckets in place, so each value change is one entry of the bucket's history; the week must
    already have parameters (week_create copies them from the previous week) and must not be
    computed or published."""

    week = fields.Field("parameters__week__code", "semana", widgets.CharWidget(), readonly=True)
    index = fields.Field("index", "bucket", BucketIndexWidget(), readonly=True)
    label = fields.Field("label", "mes", widgets.CharWidget(), readonly=True)
    volatility = fields.Field("volatility", "volatilidade", NumberWidget())
    forward_price_se = fields.Field("forward_price_se", "preco_futuro_se", NumberWidget())
    forward_price_s = fields.Field("forward_price_s", "preco_futuro_s", NumberWidget())
    forward_price_ne = fields.Field("forward_price_ne", "preco_futuro_ne", NumberWidget())
    forward_price_n = fields.Field("forward_price_n", "preco_futuro_n", NumberWidget())
    stress_price_long = fields.Field("stress_price_long", "preco_estresse_comprado", NumberWidget())
    stress_price_short = fields.Field(
        "stress_price_short", "preco_estresse_vendido", NumberWidget()
    )

    class Meta:
        model = ParameterBucket
        name = "Parâmetros CCEE (um bucket por linha)"
        fields = (
            "week",
            "index",
            "label",
            *BUCKET_FIELDS,
        )
        import_id_fields = ("week", "index")
        clean_model_instances = True
        skip_unchanged = True
        report_skipped = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for j, column in enumerate(CORRELATION_COLUMNS):
            self.fields[column] = fields.Field(
                attribute=None, column_name=column, widget=NumberWidget(), readonly=True
            )
            self.fields[column].dehydrate_method = self._correlation_getter(j)
        self._correlation_rows: dict[int, dict[int, list[float]]] = defaultdict(dict)
        self._touched: dict[int, Any] = {}
        self._bucket_values: dict[int, dict[int, dict]] = defaultdict(dict)

    @staticmethod
    def _correlation_getter(j: int):
        def getter(bucket: ParameterBucket) -> float | str:
            matrix = bucket.parameters.correlation or []
            try:
                return matrix[bucket.index][j]
            except (IndexError, TypeError):
                return ""

        return getter

    def get_export_order(self) -> tuple[str, ...]:
        return (*self._meta.fields, *CORRELATION_COLUMNS)

    def get_queryset(self) -> QuerySet[ParameterBucket]:
        return ParameterBucket.objects.select_related("parameters__week").order_by(
            "-parameters__week__code", "index"
        )

    def get_instance(self, instance_loader: Any, row: dict) -> ParameterBucket:
        """The week's existing bucket; every failure names its column."""
        code = str(row.get("semana") or "").strip()
        if code.endswith(".0"):
            code = code[:-2]
        try:
            index = _bucket_index(row.get("bucket"))
        except ValueError as exc:
            raise ValidationError({"index": str(exc)}) from None
        week = Week.objects.filter(code=code).select_related("parameters").first()
        if week is None:
            raise ValidationError({"week": _("Semana “%(code)s” não existe.") % {"code": code}})
        refuse_frozen(week)
        bucket = (
            ParameterBucket.objects.select_related("parameters__week")
            .filter(parameters__week=week, index=index)
            .first()
        )
        if bucket is None:
            raise ValidationError(
                {
                    "week": _(
                        "A semana %(code)s não tem parâmetros CCEE com o bucket M+%(index)s: "
                        "cadastre-os no admin antes de importar."
                    )
                    % {"code": code, "index": index}
                }
            )
        return bucket

    def import_instance(self, instance: ParameterBucket, row: dict, **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        present = [c for c in CORRELATION_COLUMNS if str(row.get(c) or "").strip() != ""]
        if present:
            values = []
            for column in CORRELATION_COLUMNS:
                try:
                    value = NumberWidget().clean(row.get(column))
                except ValueError as exc:
                    errors.setdefault(column, []).append(str(exc))
                    continue
                if value is None:
                    errors.setdefault(column, []).append(
                        _("Linha da correlação incompleta: preencha corr_m0 a corr_m6.")
                    )
                    continue
                values.append(float(value))
            if len(values) == BUCKET_COUNT:
                self._correlation_rows[instance.parameters_id][instance.index] = values
        self._touched[instance.parameters_id] = instance.parameters
        if errors:
            raise ValidationError(errors)

    def do_instance_save(self, instance: ParameterBucket, is_create: bool) -> None:
        """Nothing is written row by row: after_import hands each week's changes to
        parameters_save, which validates them whole and records who changed what."""
        self._bucket_values[instance.parameters_id][instance.index] = {
            f: getattr(instance, f) for f in BUCKET_FIELDS
        }

    def after_import(self, dataset: Any, result: Any, **kwargs: Any) -> None:
        """Assemble each week's correlation matrix from its rows, then update the week's
        parameters and buckets in place through parameters_save (all or nothing)."""
        if result.has_errors() or result.has_validation_errors():
            return  # the file is refused whole; the rows' errors say why
        problems = []
        for parameters_id, parameters in self._touched.items():
            rows = self._correlation_rows.get(parameters_id, {})
            parameters.refresh_from_db()
            fields = {}
            if rows:
                if len(rows) != BUCKET_COUNT:
                    problems.append(
                        _(
                            "Semana %(code)s: a correlação precisa das %(n)s linhas (M+0 a M+6); "
                            "vieram %(got)s."
                        )
                        % {"code": parameters.week.code, "n": BUCKET_COUNT, "got": len(rows)}
                    )
                    continue
                matrix = [rows[i] for i in range(BUCKET_COUNT)]
                if matrix != parameters.correlation:
                    fields["correlation"] = matrix
            buckets = self._bucket_values.get(parameters_id, {})
            if not fields and not buckets:
                continue
            try:
                parameters_save(
                    week=parameters.week, fields=fields, buckets=buckets, by=kwargs.get("user")
                )
            except ValidationError as exc:
                problems.extend(
                    f"{_('Semana')} {parameters.week.code}: {line}" for line in _error_lines(exc)
                )
        if problems:
            # A plain exception: the import page shows its text as is; any error rolls back.
            raise ValueError(" | ".join(str(p) for p in problems))


def _error_lines(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [
            m if field == "__all__" else f"{field}: {m}"
            for field, messages in exc.message_dict.items()
            for m in messages
        ]
    return list(exc.messages)
