"""The program that runs inside the AWS Nitro enclave: server, operations, keys. Imports no Django.

It starts locked, receives its key set sealed under KMS (or generates it on first boot), decrypts
agents' JWE envelopes, validates and computes, and signs every answer. See docs/enclave.md.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Root of the application tree the development PCRs measure (enclave code + risk engine).
APP_DIR = PACKAGE_DIR.parent.parent
