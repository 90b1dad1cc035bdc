"""``manage.py audit_verify``: recompute the access audit's hash chain from its first event.

Exit status 0 and the head (its number and hash, worth keeping outside the database) when every
event matches; 1 and the first broken event's number otherwise."""

from django.core.management.base import BaseCommand, CommandError

from prudencial.access.audit import verify_chain
from prudencial.access.models import AuditEvent


class Command(BaseCommand):
    help = "Recompute the access audit's hash chain and name the first broken event."

    def handle(self, *args, **options):
        count, broken = verify_chain()
        if broken is not None:
            raise CommandError(
                f"Audit chain broken at event #{broken.seq}: {broken.reason} "
                f"({count} events before it verified)."
            )
        head = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        if head is None:
            self.stdout.write("Audit chain empty: nothing to verify.")
            return
        self.stdout.write(
            self.style.SUCCESS(f"Audit chain verified: {count} events, head #{head[0]} {head[1]}")
        )
