"""The trade network of the paper's model: agents, their physical energy and bilateral contracts.

Classes (Table 1): CS consumers consume and buy; GE generators generate, buy and sell; CM traders
buy and sell. A contract is an edge seller → buyer with a volume (MWh) and a price (R$/MWh).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prudencial.domain.market import NETWORK_CLASSES as CLASSES


@dataclass(frozen=True, eq=False)
class Market:
    """Agents and contracts as flat arrays, so the engine can vectorise over them."""

    agent_ids: list[str]
    classes: np.ndarray
    generation: np.ndarray
    consumption: np.ndarray
    seller: np.ndarray
    buyer: np.ndarray
    volume: np.ndarray
    price: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.agent_ids)
        coerce = {
            "classes": np.asarray(self.classes, dtype="<U2"),
            "generation": np.asarray(self.generation, dtype=float),
            "consumption": np.asarray(self.consumption, dtype=float),
            "seller": np.asarray(self.seller, dtype=np.int64),
            "buyer": np.asarray(self.buyer, dtype=np.int64),
            "volume": np.asarray(self.volume, dtype=float),
            "price": np.asarray(self.price, dtype=float),
        }
        for name, value in coerce.items():
            object.__setattr__(self, name, value)
        if len(set(self.agent_ids)) != n:
            raise ValueError("market.agent_ids must be unique")
        for name in ("classes", "generation", "consumption"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"market.{name} must have one entry per agent ({n})")
        bad = ~np.isin(self.classes, CLASSES)
        if bad.any():
            raise ValueError(f"market.classes must be CS, GE or CM (got {self.classes[bad][0]!r})")
        m = self.seller.shape[0]
        for name in ("seller", "buyer", "volume", "price"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"market.{name} must have one entry per contract ({m})")
        for name in ("seller", "buyer"):
            idx = getattr(self, name)
            if m and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"market.{name} must hold agent indices in 0..{n - 1}")
        if np.any(self.seller == self.buyer):
            raise ValueError("market.seller and market.buyer must differ (no self-contracts)")
        for name in ("generation", "consumption", "volume", "price"):
            arr = getattr(self, name)
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"market.{name} must be finite and ≥ 0")

    @property
    def n_agents(self) -> int:
        return len(self.agent_ids)

    @property
    def n_contracts(self) -> int:
        return int(self.seller.shape[0])

    @property
    def purchases(self) -> np.ndarray:
        """MWh bought by each agent."""
        return np.bincount(self.buyer, weights=self.volume, minlength=self.n_agents)

    @property
    def sales(self) -> np.ndarray:
        """MWh sold by each agent."""
        return np.bincount(self.seller, weights=self.volume, minlength=self.n_agents)

    @property
    def resource(self) -> np.ndarray:
        """Recurso: generation + purchases (MWh)."""
        return self.generation + self.purchases

    @property
    def requirement(self) -> np.ndarray:
        """Requisito: consumption + sales (MWh)."""
        return self.consumption + self.sales

    @property
    def net(self) -> np.ndarray:
        """NET energético: resource − requirement (MWh); negative = short."""
        return self.resource - self.requirement

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent_ids": list(self.agent_ids),
            "classes": self.classes.tolist(),
            "generation": self.generation.tolist(),
            "consumption": self.consumption.tolist(),
            "seller": self.seller.tolist(),
            "buyer": self.buyer.tolist(),
            "volume": self.volume.tolist(),
            "price": self.price.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Market:
        missing = [k for k in cls.__dataclass_fields__ if k not in data]
        if missing:
            raise ValueError(f"market.{missing[0]} is required")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})
