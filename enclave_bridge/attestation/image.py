"""The enclave image's file list: one manifest (enclave_bridge/enclave-image.txt) that the image
build copies and the development measurement hashes, so the two cannot drift apart.

    python -m enclave_bridge.attestation image list         # the files, one a line
    python -m enclave_bridge.attestation image stage DIR    # copy them into DIR (build context)
    python -m enclave_bridge.attestation image measure      # development PCR0/1/2, hex
"""

from __future__ import annotations

import shutil
from pathlib import Path

MANIFEST = "enclave_bridge/enclave-image.txt"


def manifest_globs(app_dir: str | Path) -> list[str]:
    """The manifest's globs (comments and blank lines dropped)."""
    path = Path(app_dir) / MANIFEST
    if not path.is_file():
        raise ValueError(f"no enclave image manifest at {path}")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return [line for line in lines if line]


def image_files(app_dir: str | Path) -> list[Path]:
    """Every file the manifest names under ``app_dir``, sorted by relative path; no cache files."""
    root = Path(app_dir).resolve()
    files: set[Path] = set()
    for pattern in manifest_globs(root):
        matched = [p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts]
        files.update(matched)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stage(app_dir: str | Path, dest: str | Path) -> list[str]:
    """Copy the image's files into ``dest`` (emptied first); return their relative paths."""
    root = Path(app_dir).resolve()
    target = Path(dest)
    if target.exists():
        shutil.rmtree(target)
    copied = []
    for path in image_files(root):
        rel = path.relative_to(root)
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / rel)
        copied.append(rel.as_posix())
    return copied
