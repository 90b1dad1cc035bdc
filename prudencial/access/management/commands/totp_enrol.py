"""``manage.py totp_enrol <login>``: give a staff account a confirmed TOTP device at once and
print its secret (development and demos; in production use the admin's e-mailed enrolment)."""

from base64 import b32encode

import segno
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from prudencial.access.enrolment import device_create


class Command(BaseCommand):
    help = "Enrol a TOTP second factor for a staff account and print its key (dev/demo)."

    def add_arguments(self, parser):
        parser.add_argument("login")
        parser.add_argument("--name", default="demo")
        parser.add_argument(
            "--replace", action="store_true", help="Delete the account's devices first."
        )
        parser.add_argument(
            "--qr", action="store_true", help="Also print the QR code in the terminal."
        )

    def handle(self, *args, login, name, replace, qr, **options):
        user = get_user_model().objects.filter(username=login).first()
        if user is None:
            raise CommandError(f"No account with login {login!r}.")
        if not user.is_staff:
            raise CommandError(f"{login} is not staff: the admin's second factor is for staff.")
        if replace:
            from django_otp.plugins.otp_totp.models import TOTPDevice

            TOTPDevice.objects.filter(user=user).delete()
        device = device_create(user=user, name=name, confirmed=True)
        self.stdout.write(f"TOTP device {device.pk} for {login}")
        self.stdout.write(f"  key (base32): {b32encode(device.bin_key).decode()}")
        self.stdout.write(f"  URI: {device.config_url}")
        if qr:
            segno.make(device.config_url, error="m").terminal(out=self.stdout, compact=True)
