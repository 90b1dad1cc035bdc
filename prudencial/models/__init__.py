"""Models of the prudential monitoring registry, split by topic (NetBox style)."""

from .agents import (
    Agent,
    AgentClass,
    AgentGroupObjectPermission,
    AgentUserObjectPermission,
    ReportingCadence,
)
from .representations import Representation, RepresentationRole
from .users import User
from .weeks import ParameterBucket, RiskParameters, Week, WeekStatus

__all__ = [
    "Agent",
    "AgentClass",
    "AgentGroupObjectPermission",
    "AgentUserObjectPermission",
    "ParameterBucket",
    "ReportingCadence",
    "Representation",
    "RepresentationRole",
    "RiskParameters",
    "User",
    "Week",
    "WeekStatus",
]
