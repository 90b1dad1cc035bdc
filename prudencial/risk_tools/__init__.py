"""Host-only tools around the risk engine: the command line, the pictures (matplotlib) and what
only they need. Not part of the enclave image (enclave_bridge/enclave/manifest.txt), so editing a
plot label does not change the enclave's measurement; pictures are drawn on the host from results
the enclave discloses. Imports no Django.
"""
