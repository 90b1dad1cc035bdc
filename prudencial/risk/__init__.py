"""Risk engine of the prudential monitoring: leverage factor, counterparty concentration,
VaR/CVaR and the trade-network model of systemic exposure.

Pure Python + NumPy + SciPy + igraph: no Django, so it runs inside the enclave image and is
tested without a database.
"""

from prudencial.risk.agent import AgentRef
from prudencial.risk.communities import Communities, detect_communities, trade_graph
from prudencial.risk.concentration import (
    ConcentrationResult,
    Counterparty,
    CounterpartyDeclaration,
    counterparty_concentration,
)
from prudencial.risk.leverage import (
    Bucket,
    BucketFigures,
    LeverageResult,
    Portfolio,
    Position,
    RiskParameters,
    leverage_factor,
    leverage_stress,
    validate_correlation,
)
from prudencial.risk.market import Market
from prudencial.risk.measures import cvar, var
from prudencial.risk.network import (
    CommunityFigures,
    ExposureMatrices,
    NetworkRiskResult,
    exposure_matrices,
    network_risk,
    network_stress,
)
from prudencial.risk.pld import (
    PldHistory,
    bootstrap_pld,
    load_pld_csv,
    pld_history,
    pld_history_2017,
    weekly_cmo_history,
)

__all__ = [
    "AgentRef",
    "Bucket",
    "BucketFigures",
    "Communities",
    "CommunityFigures",
    "ConcentrationResult",
    "Counterparty",
    "CounterpartyDeclaration",
    "ExposureMatrices",
    "LeverageResult",
    "Market",
    "NetworkRiskResult",
    "PldHistory",
    "Portfolio",
    "Position",
    "RiskParameters",
    "bootstrap_pld",
    "counterparty_concentration",
    "cvar",
    "detect_communities",
    "exposure_matrices",
    "leverage_factor",
    "leverage_stress",
    "load_pld_csv",
    "network_risk",
    "network_stress",
    "pld_history",
    "pld_history_2017",
    "trade_graph",
    "validate_correlation",
    "var",
    "weekly_cmo_history",
]
