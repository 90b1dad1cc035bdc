"""Agents' weekly submissions: encrypted portfolio and counterparties envelopes, batches, the
enclave's signed verdicts, and the idempotency of retried requests (Django app "submissions")."""
