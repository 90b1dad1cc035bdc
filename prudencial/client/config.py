"""The agent client's configuration: where the platform is and what the enclave must prove.

One TOML file, ``client.toml`` in the configuration directory (``$PRUDENCIAL_CLIENT_HOME``, else
``$XDG_CONFIG_HOME/prudencial``, else ``~/.config/prudencial``) or the file given with
``--config``. The attestation policy is pinned there, never taken from what the platform sends::

    base_url = "https://monitoramento.example.org"

    [attestation]
    trust_root = "aws"        # the packaged AWS Nitro root; or a PEM file (development PKI)
    root_sha256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    max_age_seconds = 300     # how old a document may be
    [attestation.pcrs]        # published by CCEE with the enclave release (96 hex digits each)
    0 = "…"
    1 = "…"
    2 = "…"

The token from ``login`` is stored beside it as ``token.json`` (mode 0600, directory 0700).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_NAME = "client.toml"
TOKEN_NAME = "token.json"
AWS_ROOT = "aws"
DEFAULT_MAX_AGE = dt.timedelta(minutes=5)
PCR_HEX = re.compile(r"^[0-9a-fA-F]{96}$")  # SHA-384
SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
REQUIRED_PCRS = (0,)  # PCR0 identifies the image; 1 and 2 are recommended too
POSIX = os.name == "posix"


def config_dir() -> Path:
    """Where client.toml and token.json live."""
    if os.environ.get("PRUDENCIAL_CLIENT_HOME"):
        return Path(os.environ["PRUDENCIAL_CLIENT_HOME"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "prudencial"


@dataclass(frozen=True)
class TrustPolicy:
    """What an attestation must show before the client encrypts anything to its key."""

    trust_root: str  # "aws" or the path of a PEM/DER certificate
    pcrs: Mapping[int, bytes]
    root_sha256: str | None = None
    max_age: dt.timedelta = DEFAULT_MAX_AGE
    allow_debug: bool = False  # never in production; only debug-mode test vectors need it

    def root_certificate(self) -> Any:
        """The trust anchor as an x509 certificate (the AWS root's fingerprint checked on load)."""
        from enclave_bridge.attestation.verify import aws_nitro_root, load_trusted_root

        if self.trust_root == AWS_ROOT:
            return aws_nitro_root()
        path = Path(self.trust_root).expanduser()
        try:
            return load_trusted_root(path.read_bytes())
        except OSError as exc:
            raise ConfigError("trust_root_unreadable", path=str(path)) from exc

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, base: Path | None = None) -> TrustPolicy:
        root = data.get("trust_root")
        if not isinstance(root, str) or not root:
            raise ConfigError("trust_root_missing")
        if root != AWS_ROOT and base is not None and not Path(root).expanduser().is_absolute():
            root = str(base / root)
        raw_pcrs = data.get("pcrs")
        if not isinstance(raw_pcrs, Mapping) or not raw_pcrs:
            raise ConfigError("pcrs_missing")
        pcrs: dict[int, bytes] = {}
        for key, value in raw_pcrs.items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise ConfigError("pcr_index", index=str(key)) from None
            if not 0 <= index <= 31:
                raise ConfigError("pcr_index", index=str(key))
            if not isinstance(value, str) or not PCR_HEX.match(value):
                raise ConfigError("pcr_value", index=str(index))
            pcrs[index] = bytes.fromhex(value)
        for index in REQUIRED_PCRS:
            if index not in pcrs:
                raise ConfigError("pcr_required", index=str(index))
        sha = data.get("root_sha256")
        if sha is not None and (not isinstance(sha, str) or not SHA256_HEX.match(sha)):
            raise ConfigError("root_sha256")
        max_age = data.get("max_age_seconds", int(DEFAULT_MAX_AGE.total_seconds()))
        if not isinstance(max_age, int) or isinstance(max_age, bool) or not 1 <= max_age <= 3600:
            raise ConfigError("max_age")
        allow_debug = data.get("allow_debug", False)
        if not isinstance(allow_debug, bool):
            raise ConfigError("allow_debug")
        return cls(
            trust_root=root,
            pcrs=pcrs,
            root_sha256=None if sha is None else sha.lower(),
            max_age=dt.timedelta(seconds=max_age),
            allow_debug=allow_debug,
        )

    def to_toml(self) -> str:
        lines = ["[attestation]", f"trust_root = {json.dumps(self.trust_root)}"]
        if self.root_sha256:
            lines.append(f'root_sha256 = "{self.root_sha256}"')
        lines.append(f"max_age_seconds = {int(self.max_age.total_seconds())}")
        if self.allow_debug:
            lines.append("allow_debug = true")
        lines.append("[attestation.pcrs]")
        lines += [f'{i} = "{v.hex()}"' for i, v in sorted(self.pcrs.items())]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ClientConfig:
    """The platform's address, the pinned attestation policy and where the token is kept."""

    base_url: str
    trust: TrustPolicy | None = None
    directory: Path = field(default_factory=config_dir)
    path: Path | None = None  # the file it was read from
    timeout: float = 60.0
    verify_tls: bool | str = True  # False only for a local development server; or a CA bundle
    language: str | None = None

    @property
    def token_path(self) -> Path:
        return self.directory / TOKEN_NAME

    def require_trust(self) -> TrustPolicy:
        if self.trust is None:
            raise ConfigError("no_trust_policy", path=str(self.path or self.directory))
        return self.trust

    def to_toml(self) -> str:
        head = [f"base_url = {json.dumps(self.base_url)}", f"timeout = {self.timeout:g}"]
        if self.verify_tls is not True:
            head.append(f"verify_tls = {json.dumps(self.verify_tls)}")
        if self.language:
            head.append(f"language = {json.dumps(self.language)}")
        text = "\n".join(head) + "\n"
        if self.trust is not None:
            text += "\n" + self.trust.to_toml()
        return text


def load_config(path: str | os.PathLike[str] | None = None) -> ClientConfig:
    """Read client.toml (``path``, ``$PRUDENCIAL_CLIENT_CONFIG`` or the default one).

    ``$PRUDENCIAL_BASE_URL`` overrides ``base_url``. A missing default file gives a config with
    only the base URL from the environment (no trust policy: nothing can be encrypted)."""
    explicit = path or os.environ.get("PRUDENCIAL_CLIENT_CONFIG")
    file = Path(explicit).expanduser() if explicit else config_dir() / CONFIG_NAME
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("unreadable", path=str(file), reason=str(exc)) from exc
    elif explicit:
        raise ConfigError("missing", path=str(file))
    directory = file.parent if explicit else config_dir()
    base_url = os.environ.get("PRUDENCIAL_BASE_URL") or data.get("base_url") or ""
    if not isinstance(base_url, str):
        raise ConfigError("base_url")
    trust = None
    if "attestation" in data:
        if not isinstance(data["attestation"], Mapping):
            raise ConfigError("trust_root_missing")
        trust = TrustPolicy.from_mapping(data["attestation"], base=file.parent)
    verify_tls = data.get("verify_tls", True)
    if not isinstance(verify_tls, bool | str):
        raise ConfigError("verify_tls")
    timeout = data.get("timeout", 60.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError("timeout")
    language = data.get("language")
    return ClientConfig(
        base_url=base_url.rstrip("/"),
        trust=trust,
        directory=directory,
        path=file if file.exists() else None,
        timeout=float(timeout),
        verify_tls=verify_tls,
        language=language if isinstance(language, str) else None,
    )


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600) in a directory only its owner can enter."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if POSIX:  # on Windows the user profile's ACLs keep it private
        os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if POSIX:
            os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_config(config: ClientConfig, path: Path | None = None) -> Path:
    target = path or config.path or config.directory / CONFIG_NAME
    write_private(target, config.to_toml())
    return target


def save_token(config: ClientConfig, token: str, username: str) -> Path:
    """Store the API token for this base URL (mode 0600)."""
    stored = {"base_url": config.base_url, "username": username, "token": token}
    write_private(config.token_path, json.dumps(stored, indent=2) + "\n")
    return config.token_path


def load_token(config: ClientConfig) -> str | None:
    """``$PRUDENCIAL_TOKEN``, else the stored token when it is for this base URL.

    A token file that others may read is refused (ConfigError), as ssh refuses a key."""
    if os.environ.get("PRUDENCIAL_TOKEN"):
        return os.environ["PRUDENCIAL_TOKEN"]
    path = config.token_path
    if not path.exists():
        return None
    if POSIX and path.stat().st_mode & 0o077:
        raise ConfigError("token_permissions", path=str(path))
    try:
        stored = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("base_url") != config.base_url:
        return None
    token = stored.get("token")
    return token if isinstance(token, str) and token else None


def forget_token(config: ClientConfig) -> bool:
    try:
        config.token_path.unlink()
        return True
    except FileNotFoundError:
        return False
