"""Stream-socket addresses shared by the enclave server and the host client.

``vsock:CID:PORT`` is the only channel a Nitro enclave has (parent CID 3, enclaves from 16);
``unix:PATH`` and ``tcp:127.0.0.1:PORT`` stand in for it in development and tests. Everything
above this module sees a connected stream socket, whichever family it is.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    """A parsed listen/connect address."""

    scheme: str  # "vsock" | "unix" | "tcp"
    host: str = ""
    port: int = 0
    cid: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.scheme == "vsock":
            return f"vsock:{self.cid}:{self.port}"
        if self.scheme == "unix":
            return f"unix:{self.path}"
        return f"tcp:{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """Parse ``vsock:CID:PORT``, ``unix:PATH`` or ``tcp:HOST:PORT``."""
    scheme, _, rest = text.partition(":")
    if scheme == "unix" and rest:
        return Address("unix", path=rest)
    if scheme == "vsock":
        cid, _, port = rest.partition(":")
        if cid.isdigit() and port.isdigit():
            return Address("vsock", cid=int(cid), port=int(port))
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return Address("tcp", host=host.strip("[]"), port=int(port))
    raise ValueError(f"address {text!r} is not vsock:CID:PORT, unix:PATH or tcp:HOST:PORT")


def listen(address: Address, *, backlog: int = 1024) -> socket.socket:
    """Open a listening socket. TCP is loopback only: the enclave never listens on a network.

    The backlog is deep so a flood of connects waits to be accepted (and shed) rather than
    making the host's own connect fail at once (a full unix-socket backlog answers EAGAIN)."""
    if address.scheme == "vsock":
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        sock.bind((address.cid, address.port))
    elif address.scheme == "unix":
        if os.path.exists(address.path):
            os.unlink(address.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address.path)
        os.chmod(address.path, 0o600)
    else:
        ip = ipaddress.ip_address(address.host)
        if not ip.is_loopback:
            raise ValueError("tcp listening is for development and must be on a loopback address")
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
    sock.listen(backlog)
    return sock


def bound_address(sock: socket.socket, address: Address) -> Address:
    """The address actually bound (resolves TCP port 0 to the chosen port)."""
    if address.scheme == "tcp":
        return Address("tcp", host=address.host, port=sock.getsockname()[1])
    return address


def connect(address: Address, *, timeout: float) -> socket.socket:
    """Connect a stream socket to the enclave."""
    if address.scheme == "vsock":
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        target: object = (address.cid, address.port)
    elif address.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address.path
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (address.host, address.port)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    if address.scheme == "tcp":
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
