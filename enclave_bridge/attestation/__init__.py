"""Nitro attestation: COSE_Sign1, the verifier, and the development PKI and simulated NSM.

Imports no Django: this package runs inside the enclave image and in the agents' client.
"""

from .devpki import DevPki, create_dev_pki, ensure_dev_pki, load_dev_pki
from .nsm import Nsm, SimulatedNsm, measure_pcrs
from .verify import (
    AWS_NITRO_ROOT_SHA256,
    AttestationDocument,
    AttestationError,
    aws_nitro_root,
    load_trusted_root,
    verify_attestation,
)

__all__ = [
    "AWS_NITRO_ROOT_SHA256",
    "AttestationDocument",
    "AttestationError",
    "DevPki",
    "Nsm",
    "SimulatedNsm",
    "aws_nitro_root",
    "create_dev_pki",
    "ensure_dev_pki",
    "load_dev_pki",
    "load_trusted_root",
    "measure_pcrs",
    "verify_attestation",
]
