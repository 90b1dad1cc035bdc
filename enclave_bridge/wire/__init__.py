"""The wire between the host and the enclave, shared by both sides and by nothing else:
``protocol`` (framing, the CBOR frame scanner, requests, signed answers, strict JSON) and
``transport`` (vsock, unix and loopback-TCP addresses and sockets). Imports no Django and nothing
of the host or of the enclave program, so the host client decodes exactly what the enclave
encodes.
"""
