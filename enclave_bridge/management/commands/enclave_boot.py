"""Unlock a running enclave (production: over vsock) with the stored sealed key set, verify its
attestation and register its keys. Starts no process: the enclave runs already
(`nitro-cli run-enclave`; `run_enclave` starts the local development stack).

    manage.py enclave_boot --address vsock:16:5000

Safe to run at any time: an enclave that is unlocked already is only checked (its keys are
registered if they are not yet). The gateway does the same on the first call that finds the
enclave locked; this command is for the boot script and for an operator who wants to see it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from enclave_bridge.gateway import (
    AnswerVerificationError,
    AttestationError,
    BootReport,
    EnclaveConnectionError,
    EnclaveError,
    EnclaveUnlockError,
    gateway,
)

ACTIONS = {
    "none": "already unlocked; its keys are the registered ones",
    "registered": "already unlocked; attestation verified and its keys registered",
    "unsealed": "unsealed with the current sealed key set",
    "unsealed_pending": "unsealed with the first-boot key set awaiting attestation (now current)",
    "initialised": "initialised (first boot): new keys, sealed key set stored",
}


def report_lines(report: BootReport) -> list[str]:
    """What a boot did, for people: state before, action, kids, PCR0 prefix."""
    lines = [
        f"Enclave at {report.address}: was {report.state_before}; {ACTIONS[report.action]}.",
        f"  envelope kid {report.kid}",
        f"  signing kid  {report.signing_kid}",
        f"  PCR0 {report.pcr0[:16]}…",
    ]
    retired = [k.kid for k in report.keys if k.status != "current"]
    if retired:
        lines.append(f"  older envelope keys still open: {', '.join(retired)}")
    return lines


class Command(BaseCommand):
    help = (
        "Unlocks a running enclave (vsock:CID:PORT, tcp:HOST:PORT or unix:PATH) with the stored "
        "sealed keys, verifies its attestation and registers its keys."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--address",
            default=None,
            help="enclave address (default settings.ENCLAVE_ADDRESS), e.g. vsock:16:5000",
        )
        parser.add_argument(
            "--kms-key-id",
            default=None,
            help="KMS key the enclave seals with, its --kms-key-id (default ENCLAVE_KMS_KEY_ID)",
        )
        parser.add_argument(
            "--new-keys",
            action="store_true",
            help="allow new keys when sealed sets are stored only under other KMS keys "
            "(envelopes encrypted to the old keys can then no longer be opened)",
        )

    def handle(self, *args, **options) -> None:
        address = options["address"] or settings.ENCLAVE_ADDRESS
        kms_key_id = options["kms_key_id"] or settings.ENCLAVE_KMS_KEY_ID
        try:
            report = gateway(address, kms_key_id=kms_key_id).ensure_unlocked(
                allow_new_keys=options["new_keys"]
            )
        except ValueError as exc:  # the address does not parse
            raise CommandError(str(exc)) from exc
        except EnclaveConnectionError as exc:
            raise CommandError(f"no enclave answers at {address}: {exc}") from exc
        except (EnclaveUnlockError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        except (EnclaveError, AttestationError, AnswerVerificationError) as exc:
            raise CommandError(f"enclave at {address} not trusted: {exc}") from exc
        for line in report_lines(report):
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS("Enclave unlocked and its keys registered."))
