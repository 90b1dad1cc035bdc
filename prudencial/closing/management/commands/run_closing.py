"""`manage.py run_closing WEEK [--correct --why TEXT --by USERNAME] [--no-wait]`: start (or
correct) a week's closing and follow its progress (x of N agents) until it is done, delayed or
failed. The steps run on the Celery workers (in-process when Celery is eager, e.g. the demo)."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from prudencial.closing import services
from prudencial.closing.models import Closing, ClosingState
from prudencial.models import Week

FINAL = {ClosingState.DONE, ClosingState.DELAYED, ClosingState.FAILED, ClosingState.SUPERSEDED}


class Command(BaseCommand):
    help = "Inicia (ou corrige) o fechamento de uma semana e acompanha o progresso."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("week", help="código da semana, ex. 202303001")
        parser.add_argument("--correct", action="store_true", help="nova execução (correção)")
        parser.add_argument(
            "--why", default="", help="motivo da correção (obrigatório com --correct)"
        )
        parser.add_argument("--by", default="", help="usuário da equipe CCEE que inicia")
        parser.add_argument("--no-wait", action="store_true", help="não acompanhar o progresso")
        parser.add_argument("--timeout", type=float, default=3600.0, help="segundos de espera")

    def handle(self, *args, **options) -> None:
        week = Week.objects.filter(code=options["week"]).first()
        if week is None:
            raise CommandError(f"semana {options['week']} não encontrada")
        by = None
        if options["by"]:
            by = get_user_model().objects.filter(username=options["by"]).first()
            if by is None:
                raise CommandError(f"usuário {options['by']} não encontrado")
        try:
            if options["correct"]:
                if by is None:
                    raise CommandError("--correct exige --by (quem corrige) e --why")
                closing = services.closing_correct(week=week, by=by, why=options["why"])
            else:
                closing = services.closing_start(week=week, by=by)
        except (ValidationError, PermissionDenied) as exc:
            raise CommandError("; ".join(getattr(exc, "messages", [str(exc)]))) from exc
        self.stdout.write(f"fechamento {closing.reference} (id {closing.pk}): {closing.state}")
        if options["no_wait"]:
            return
        closing = self._follow(closing.pk, options["timeout"])
        self.stdout.write(
            f"fechamento {closing.reference}: {closing.state}; "
            f"{closing.agents_done} de {closing.agents_total} agentes; etapas {closing.stage_times}"
        )
        if closing.state != ClosingState.DONE:
            raise CommandError(f"{closing.state}: {closing.error_code} {closing.error_message}")

    def _follow(self, closing_id: int, timeout: float) -> Closing:
        deadline = time.monotonic() + timeout
        closing = Closing.objects.select_related("week").get(pk=closing_id)
        with tqdm(total=closing.agents_total or None, unit="agente", file=self.stderr) as bar:
            while True:
                closing.refresh_from_db()
                if closing.agents_total and bar.total != closing.agents_total:
                    bar.total = closing.agents_total
                bar.n = closing.agents_done
                bar.set_postfix_str(closing.state)
                bar.refresh()
                if closing.state in FINAL or time.monotonic() > deadline:
                    return closing
                time.sleep(0.5)
