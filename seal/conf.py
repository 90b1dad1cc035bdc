"""The seal's parameters, read from settings with documented defaults (docs/seal.md).

B3 publishes the measures and their points but not the cut-offs between levels nor the
exposure limit of its risk methodology: both are parameters here, so CCEE can set them
without a code change. Defaults and why:

- ``SEAL_LEVEL_CUTOFFS`` {2: 30, 3: 55}: the minimum total for level 2 and level 3 (below 30:
  level 1; level 3 is the best). The catalogue's maximum is 83 points. 30 is the total of an
  agent that meets both mandatory measures (0 + 10) and adds half-yearly statements (+10), API
  sending (+7) and an annual audit (+5) = 32: the first step beyond the obligations. 55 is two
  thirds of the maximum (83 · 2/3 ≈ 55.3): it needs real-time sending or quarterly statements
  plus most of the governance structure. A discrepancy (−15) or a missed mandatory measure
  (−10) moves a typical agent down one level.
- ``SEAL_RESPONSE_DAYS`` 7: the issue's default response period (one week).
- ``SEAL_ADHERENCE_LIMIT`` 1.0: the exposure the PLA supports, as a fraction of PLA. 1.0 means
  the potential loss under the week's stress scenarios must be covered by the adjusted equity,
  the same bar as the FA alert threshold of 1.0 (RWA ≤ PLA) the platform uses while no
  official band is published.
- ``SEAL_API_MIN_SHARE`` 1.0: the share of the cycle's counted submissions sent through the
  API for the +7 measure (B3: "sending via system integration"); every one by default.
- ``SEAL_REGULARITY_MIN_SHARE`` 1.0: the share of the cycle's reporting events with an accepted
  portfolio for the mandatory submission measure; every one by default.
- ``SEAL_EVIDENCE_MAX_BYTES`` 2 MiB (under the API's body limit of 2.5 MiB); ``SEAL_ZIP_MAX_MEMBERS`` 2,000 and
  ``SEAL_ZIP_MAX_UNCOMPRESSED`` 100 MiB, ``SEAL_ZIP_MAX_RATIO`` 100: the bounds of an XLSX
  upload's zip inspection (a zip bomb is refused from its directory, never inflated).
"""

from __future__ import annotations

from django.conf import settings

DEFAULT_LEVEL_CUTOFFS: dict[int, int] = {2: 30, 3: 55}
DEFAULT_RESPONSE_DAYS = 7
DEFAULT_ADHERENCE_LIMIT = 1.0
DEFAULT_API_MIN_SHARE = 1.0
DEFAULT_REGULARITY_MIN_SHARE = 1.0
DEFAULT_EVIDENCE_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_ZIP_MAX_MEMBERS = 2_000
DEFAULT_ZIP_MAX_UNCOMPRESSED = 100 * 1024 * 1024
DEFAULT_ZIP_MAX_RATIO = 100


def level_cutoffs() -> dict[int, int]:
    """{level: minimum total} for levels 2 and 3, from SEAL_LEVEL_CUTOFFS."""
    raw = getattr(settings, "SEAL_LEVEL_CUTOFFS", DEFAULT_LEVEL_CUTOFFS)
    return {int(k): int(v) for k, v in dict(raw).items()}


def response_days() -> int:
    return int(getattr(settings, "SEAL_RESPONSE_DAYS", DEFAULT_RESPONSE_DAYS))


def adherence_limit() -> float:
    return float(getattr(settings, "SEAL_ADHERENCE_LIMIT", DEFAULT_ADHERENCE_LIMIT))


def api_min_share() -> float:
    return float(getattr(settings, "SEAL_API_MIN_SHARE", DEFAULT_API_MIN_SHARE))


def regularity_min_share() -> float:
    return float(getattr(settings, "SEAL_REGULARITY_MIN_SHARE", DEFAULT_REGULARITY_MIN_SHARE))


def evidence_max_bytes() -> int:
    return int(getattr(settings, "SEAL_EVIDENCE_MAX_BYTES", DEFAULT_EVIDENCE_MAX_BYTES))


def zip_limits() -> tuple[int, int, int]:
    """(max members, max total uncompressed bytes, max compression ratio of a member)."""
    return (
        int(getattr(settings, "SEAL_ZIP_MAX_MEMBERS", DEFAULT_ZIP_MAX_MEMBERS)),
        int(getattr(settings, "SEAL_ZIP_MAX_UNCOMPRESSED", DEFAULT_ZIP_MAX_UNCOMPRESSED)),
        int(getattr(settings, "SEAL_ZIP_MAX_RATIO", DEFAULT_ZIP_MAX_RATIO)),
    )
