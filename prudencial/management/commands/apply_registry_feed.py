"""Apply a registry feed file (docs/registry.md): creates, changes and ends representations.

    manage.py apply_registry_feed changes.json --by registro.ccee
    manage.py apply_registry_feed changes.csv --by registro.ccee --dry-run

The file is validated whole first; a wrong row refuses it whole (every error printed with its
row, field and rule, exit status 1) and nothing is written. The same file applied twice changes
nothing the second time. `--by` names the account recorded in the history as the sender.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from prudencial.models import User
from prudencial.services.registry_feed import (
    FeedRefused,
    feed_read,
    feed_source,
    registry_feed_apply,
)


class _DryRun(Exception):
    pass


class Command(BaseCommand):
    help = "Aplica um arquivo do feed do cadastro da CCEE (representações)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="arquivo .json ou .csv do feed")
        parser.add_argument("--by", help="usuário registrado no histórico como remetente")
        parser.add_argument("--format", choices=("json", "csv"), help="padrão: pela extensão")
        parser.add_argument("--dry-run", action="store_true", help="valida e desfaz")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"Arquivo não encontrado: {path}")
        fmt = options["format"] or ("csv" if path.suffix.lower() == ".csv" else "json")
        by = None
        if options["by"]:
            by = User.objects.filter(username=options["by"]).first()
            if by is None:
                raise CommandError(f"Usuário “{options['by']}” não encontrado.")
        content = path.read_bytes()
        bar = tqdm(total=100, desc="feed", unit="%", disable=options["verbosity"] < 1)

        def progress(done: int, total: int) -> None:
            bar.n = round(100 * done / total) if total else 100
            bar.refresh()

        try:
            rows = feed_read(content, fmt=fmt)
            with transaction.atomic():
                result = registry_feed_apply(
                    rows=rows, by=by, source=feed_source(content), progress=progress
                )
                if options["dry_run"]:
                    raise _DryRun
        except FeedRefused as refused:
            bar.close()
            for error in refused.errors:
                self.stderr.write(str(error))
            raise CommandError(
                f"Feed recusado: {len(refused.errors)} erro(s); nada foi aplicado."
            ) from None
        except _DryRun:
            bar.close()
            self.stdout.write(self.style.WARNING("Validado (--dry-run): nada foi aplicado."))
            return
        bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.rows} mudanças: {result.created} criadas, {result.changed} alteradas, "
                f"{result.ended} encerradas, {result.removed} removidas, "
                f"{result.unchanged} sem alteração; {result.users_created} usuários novos; "
                f"permissões +{result.permissions_added} −{result.permissions_removed}."
            )
        )
