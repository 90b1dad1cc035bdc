"""Key-policy evaluation for the simulated KMS: principals, actions, Allow/Deny and the
`kms:RecipientAttestation:*` conditions.

Real KMS evaluates key policies together with IAM policies, grants and every condition key. The
simulation evaluates the key policy alone, for EVERY operation on a key:
- an explicit Deny whose principal, action and conditions match wins;
- otherwise an Allow whose principal, action and conditions match is needed;
- otherwise the default is deny (AccessDeniedException).
Principals are matched by ARN; `"*"` matches anyone, and `arn:aws:iam::<account>:root` matches
every principal of that account (in AWS that delegates to IAM policies, which the simulation
takes as allowing). Grants are never evaluated, so they never allow anything. Conditions: only
StringEquals[IgnoreCase] on `kms:RecipientAttestation:ImageSha384` (PCR0) and
`kms:RecipientAttestation:PCR<n>` are understood. A condition it does not understand is NOT
satisfied in an Allow and IS satisfied in a Deny, so an unsupported policy fails closed.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re

from enclave_bridge.attestation.verify import AttestationDocument

logger = logging.getLogger(__name__)

_PREFIX = "kms:recipientattestation:"
_PCR_KEY = re.compile(r"^pcr(\d{1,2})$")
# Supported condition operators → whether they compare case-insensitively.
_OPERATORS = {"stringequalsignorecase": True, "stringequals": False}

DEFAULT_ACCOUNT_ID = "123456789012"
# The two roles of the production design (and of the simulation, see server.PRINCIPALS).
INSTANCE_ROLE_NAME = "enclave-parent-instance"
KEY_ADMIN_ROLE_NAME = "kms-key-admin"

# The key administrator: manages the key and its policy, never uses it cryptographically.
ADMIN_ACTIONS = [
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
]
# The parent instance role (host and enclave share it): only these, only for an attested enclave.
ATTESTED_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"]
# Denied to the instance role whatever else the policy (or an IAM policy) says: each would let
# the host choose or learn a data key (Encrypt/ReEncrypt/...WithoutPlaintext wrap host-chosen or
# host-held material; CreateGrant and PutKeyPolicy would hand it unconditioned access).
INSTANCE_DENIED_ACTIONS = [
    "kms:Encrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:CreateGrant",
    "kms:PutKeyPolicy",
]


def role_arn(name: str, account_id: str = DEFAULT_ACCOUNT_ID) -> str:
    return f"arn:aws:iam::{account_id}:role/{name}"


def attestation_key_policy(
    pcrs: dict[int, str],
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    instance_role_arn: str | None = None,
    admin_role_arn: str | None = None,
) -> str:
    """The enclave sealing key's policy: a key-admin role that administers but cannot use the
    key; the parent instance role allowed ONLY Decrypt/GenerateDataKey(Pair) for an enclave whose
    attested PCRs equal `pcrs` (index → hex; PCR0 goes in as ImageSha384); explicit denies of
    everything that would let the instance role choose or learn a data key."""
    if 0 not in pcrs:
        raise ValueError("an attested key policy needs PCR0 (ImageSha384)")
    instance = instance_role_arn or role_arn(INSTANCE_ROLE_NAME, account_id)
    admin = admin_role_arn or role_arn(KEY_ADMIN_ROLE_NAME, account_id)
    if instance == admin:
        raise ValueError("the key administrator must be a different principal from the instance")
    conditions = {}
    for index, value in sorted(pcrs.items()):
        if not re.fullmatch(r"[0-9a-fA-F]{96}", value):
            raise ValueError(f"PCR{index} must be 96 hex digits (SHA-384)")
        key = "ImageSha384" if index == 0 else f"PCR{index}"
        conditions[f"kms:RecipientAttestation:{key}"] = value.lower()
    policy = {
        "Version": "2012-10-17",
        "Id": "enclave-attested-key",
        "Statement": [
            {
                "Sid": "KeyAdministration",
                "Effect": "Allow",
                "Principal": {"AWS": admin},
                "Action": ADMIN_ACTIONS,
                "Resource": "*",
            },
            {
                "Sid": "AttestedEnclaveOnly",
                "Effect": "Allow",
                "Principal": {"AWS": instance},
                "Action": ATTESTED_ACTIONS,
                "Resource": "*",
                "Condition": {"StringEqualsIgnoreCase": conditions},
            },
            {
                "Sid": "InstanceNeverChoosesOrLearnsDataKeys",
                "Effect": "Deny",
                "Principal": {"AWS": instance},
                "Action": INSTANCE_DENIED_ACTIONS,
                "Resource": "*",
            },
        ],
    }
    return json.dumps(policy, indent=2)


def _as_list(value: object) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _matches_any(patterns: list, value: str) -> bool:
    return any(
        isinstance(p, str) and fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns
    )


def _action_matches(statement: dict, action: str) -> bool:
    if "NotAction" in statement:
        return not _matches_any(_as_list(statement.get("NotAction")), action)
    return _matches_any(_as_list(statement.get("Action")), action)


def _principal_patterns(value: object) -> list:
    if value == "*":
        return ["*"]
    if isinstance(value, dict):
        return _as_list(value.get("AWS"))
    return []


def _principal_in(patterns: list, principal: str | None) -> bool:
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        if pattern == "*":
            return True
        if principal is None:
            continue
        if pattern == principal:
            return True
        # arn:aws:iam::<account>:root (or a bare account id): every principal of the account.
        account = pattern.removeprefix("arn:aws:iam::").removesuffix(":root")
        if account.isdigit() and principal.startswith(f"arn:aws:iam::{account}:"):
            return True
    return False


def _principal_matches(statement: dict, principal: str | None) -> bool:
    if "NotPrincipal" in statement:
        return not _principal_in(_principal_patterns(statement.get("NotPrincipal")), principal)
    # A key-policy statement without Principal is invalid in KMS: it matches nobody here.
    return _principal_in(_principal_patterns(statement.get("Principal")), principal)


def _attested_value(key: str, attestation: AttestationDocument | None) -> str | None:
    if attestation is None:
        return None
    name = key[len(_PREFIX) :]
    if name == "imagesha384":
        index = 0
    else:
        match = _PCR_KEY.match(name)
        if not match:
            return None
        index = int(match.group(1))
    value = attestation.pcrs.get(index)
    return value.hex() if value is not None else None


def _conditions_hold(
    statement: dict, attestation: AttestationDocument | None, *, unknown: bool = False
) -> bool:
    """Whether the statement's conditions hold; `unknown` is the answer for a condition the
    simulation cannot evaluate (False for an Allow, True for a Deny: fail closed)."""
    for operator, block in (statement.get("Condition") or {}).items():
        op = operator.lower()
        if op not in _OPERATORS or not isinstance(block, dict):
            logger.warning("simulated KMS does not evaluate condition operator %s", operator)
            if not unknown:
                return False
            continue
        for key, expected in block.items():
            if not key.lower().startswith(_PREFIX):
                logger.warning("simulated KMS does not evaluate condition key %s", key)
                if not unknown:
                    return False
                continue
            actual = _attested_value(key.lower(), attestation)
            if actual is None:
                return False
            ignore_case = _OPERATORS[op]
            candidates = [str(v) for v in _as_list(expected)]
            if ignore_case:
                if actual.lower() not in {c.lower() for c in candidates}:
                    return False
            elif actual not in candidates:
                return False
    return True


def is_allowed(
    policy_json: str,
    action: str,
    attestation: AttestationDocument | None,
    principal: str | None = None,
) -> tuple[bool, str]:
    """Evaluate `action` (e.g. "kms:Decrypt") by `principal` (an ARN; None = anonymous) against
    the key policy; (allowed, reason). Explicit deny wins, then a matching Allow, else deny."""
    try:
        policy = json.loads(policy_json)
    except (TypeError, ValueError):
        return False, "key policy is not valid JSON"
    if not isinstance(policy, dict):
        return False, "key policy is not a JSON object"
    statements = [s for s in _as_list(policy.get("Statement")) if isinstance(s, dict)]
    relevant = [
        s for s in statements if _action_matches(s, action) and _principal_matches(s, principal)
    ]
    for statement in relevant:
        if statement.get("Effect") == "Deny" and _conditions_hold(
            statement, attestation, unknown=True
        ):
            return False, f"an explicit deny in the key policy ({statement.get('Sid', 'no Sid')})"
    for statement in relevant:
        if statement.get("Effect") == "Allow" and _conditions_hold(statement, attestation):
            return True, f"allowed by {statement.get('Sid', 'a statement')}"
    allows = [s for s in relevant if s.get("Effect") == "Allow"]
    if attestation is None and any(s.get("Condition") for s in allows):
        return False, "the key policy requires an attested Recipient"
    if allows:
        return False, "no statement of the key policy allows it (attestation conditions not met)"
    return False, f"no statement of the key policy allows {action} to this principal"
