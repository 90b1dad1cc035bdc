"""manage.py export_missing --week CODE --format csv|xlsx [--kind portfolio|counterparties]
[--output FILE]: the eligible agents still missing for a week (prudencial.submissions.exports)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from prudencial.models import Week
from prudencial.submissions import exports
from prudencial.submissions.models import Kind


class Command(BaseCommand):
    help = "Exporta os agentes elegíveis que ainda não enviaram dados na semana (CSV ou XLSX)."

    def add_arguments(self, parser):
        parser.add_argument("--week", required=True, help="código da semana, ex. 202303001")
        parser.add_argument("--format", required=True, choices=exports.FORMATS, dest="file_format")
        parser.add_argument(
            "--kind", choices=Kind.values, default=None, help="só um tipo (padrão: qualquer)"
        )
        parser.add_argument(
            "--output", default="-", help="arquivo de saída (padrão: a saída padrão)"
        )

    def handle(self, *args, week, file_format, kind, output, **options):
        found = Week.objects.filter(code=week).first()
        if found is None:
            raise CommandError(f"semana {week} não existe")
        data = exports.export(week=found, file_format=file_format, kind=kind)
        if output == "-":
            stream = getattr(self.stdout, "_out", sys.stdout)
            if hasattr(stream, "buffer"):
                stream.flush()
                stream.buffer.write(data)
                stream.buffer.flush()
            elif file_format == "csv":
                stream.write(data.decode("utf-8"))
            else:
                raise CommandError("XLSX precisa de --output FILE")
        else:
            with open(output, "wb") as fh:
                fh.write(data)
            self.stderr.write(f"{output}: {len(data)} bytes")
