"""Times as people in Brazil read them: the one place the submissions app formats a deadline
(refusal messages of the services, the Instruções sheet of the XLSX templates)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

BRASILIA = ZoneInfo("America/Sao_Paulo")
DEADLINE_FORMAT = "%d/%m/%Y %H:%M"


def deadline_text(deadline: datetime) -> str:
    """A deadline in Brasília time, as people read it: 08/03/2023 20:00 (the caller says
    "horário de Brasília" in its own sentence)."""
    return deadline.astimezone(BRASILIA).strftime(DEADLINE_FORMAT)
