"""Create (or complete) the group "Equipe CCEE" with the model permissions CCEE staff need.

Staff read, add and change the registry, weeks and parameters and the Celery beat schedules,
and read the history, the derived permission tables and the enclave's key registry
(enclave_bridge: EnclaveKey, SealedKeySet), which only the enclave services write, and the
submissions' metadata (submissions: Submission, Verdict, Batch; never the envelope), work the
alerts' case queue (alerts: view/change cases; their history and e-mails view only), run the
trust seal's cycles (seal: criteria, cycles, evaluations, plus publish_evaluation; evidence,
answers, adherence and the decision log view only) and the weekly closing (closing: view everything the services write,
plus run_closing and submit_trade_network). They get no delete permission (agents
are deactivated, representations ended) and none of the agents' object permissions
(submit_agent_data, send_leverage_result), which only representations grant. Idempotent: it
adds what is missing and keeps permissions a superuser added by hand (--exact removes them).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

STAFF_GROUP = "Equipe CCEE"
EDITABLE_APPS = ("prudencial", "django_celery_beat", "alerts", "seal")
# Written only by services (the enclave's key registry; agents' submissions and their signed
# verdicts, which are append-only): staff may look, never edit.
VIEW_ONLY_APPS = ("enclave_bridge", "submissions", "closing")
# The closing's own actions beyond viewing (its rows are written only by its services).
# The seal's publication (it makes an agent's level public): beyond change_evaluation.
EXTRA_PERMISSIONS = (
    ("closing", "run_closing"),
    ("closing", "submit_trade_network"),
    ("seal", "publish_evaluation"),
)
# Written only by services (derived from representations): staff may look, never edit.
READ_ONLY_MODELS = {
    "agentuserobjectpermission",
    "agentgroupobjectpermission",
    # alerts: a case's history and its e-mails are written only by the alerts services.
    "caseevent",
    "alertemail",
    # seal: uploads, answers, signed adherence and the decision log are append-only.
    "evidence",
    "agentresponse",
    "adherenceresult",
    "decisionlog",
}


def staff_permissions() -> list[Permission]:
    """view/add/change on the editable apps' models; view only on history and derived tables."""
    wanted: list[tuple[str, str]] = []
    for label in (*EDITABLE_APPS, *VIEW_ONLY_APPS):
        for model in apps.get_app_config(label).get_models():
            name = model._meta.model_name
            read_only = (
                label in VIEW_ONLY_APPS or name in READ_ONLY_MODELS or name.startswith("historical")
            )
            actions = ("view",) if read_only else ("view", "add", "change")
            ct = ContentType.objects.get_for_model(model, for_concrete_model=False)
            wanted += [(ct.pk, f"{action}_{name}") for action in actions]
    for label, codename in EXTRA_PERMISSIONS:
        for model in apps.get_app_config(label).get_models():
            if any(code == codename for code, _ in model._meta.permissions):
                ct = ContentType.objects.get_for_model(model, for_concrete_model=False)
                wanted.append((ct.pk, codename))
    found = {
        (p.content_type_id, p.codename): p
        for p in Permission.objects.filter(
            content_type_id__in={ct for ct, _ in wanted}, codename__in={c for _, c in wanted}
        )
    }
    return [found[key] for key in wanted if key in found]


@transaction.atomic
def setup_staff_group(*, exact: bool = False) -> tuple[Group, int]:
    """The staff group with its permissions; returns the group and how many were added."""
    for label in (*EDITABLE_APPS, *VIEW_ONLY_APPS):
        create_permissions(apps.get_app_config(label), verbosity=0)
    group, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    permissions = staff_permissions()
    before = set(group.permissions.values_list("pk", flat=True))
    if exact:
        group.permissions.set(permissions)
    else:
        group.permissions.add(*permissions)
    return group, len({p.pk for p in permissions} - before)


class Command(BaseCommand):
    help = 'Cria o grupo "Equipe CCEE" com as permissões de modelo da equipe da CCEE.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--exact",
            action="store_true",
            help="Remove do grupo permissões que não estão na lista padrão.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        group, added = setup_staff_group(exact=options["exact"])
        total = group.permissions.count()
        self.stdout.write(
            self.style.SUCCESS(f'Grupo "{group.name}": {total} permissões ({added} novas).')
        )
