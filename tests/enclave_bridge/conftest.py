"""Each test starts without a process-wide enclave gateway, so settings changed by one test
(address, KMS key, retries) never reach the next through a cached client."""

import pytest


@pytest.fixture(autouse=True)
def _fresh_gateways():
    from enclave_bridge.gateway import reset_gateways

    reset_gateways()
    yield
    reset_gateways()
