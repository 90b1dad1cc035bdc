"""The agent reference carried in every confidential payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prudencial.domain import values as check


@dataclass(frozen=True)
class AgentRef:
    """Agent (agente) by its CCEE acronym (sigla) and CNPJ; the registry validates the CNPJ."""

    acronym: str
    cnpj: str

    @classmethod
    def from_dict(cls, data: Any, field: str = "agent") -> AgentRef:
        data = check.require_mapping(data, field)
        acronym = check.text(check.require_key(data, "acronym", field), f"{field}.acronym")
        cnpj = check.text(check.require_key(data, "cnpj", field), f"{field}.cnpj")
        return cls(acronym=acronym, cnpj=cnpj)

    def to_dict(self) -> dict[str, str]:
        return {"acronym": self.acronym, "cnpj": self.cnpj}
