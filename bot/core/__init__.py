"""The agent core, one implementation for every platform: turns, the tool loop, approvals, permissions.

Adapters see only the port (`CorePort`, `Responder`); the composition root builds the rest from its parts.
"""

from bot.core.agent import Agent, TurnLimits
from bot.core.approvals import ApprovalDesk
from bot.core.loop import LoopLimits, ToolLoop
from bot.core.permissions import Permissions, load_permissions, parse_permissions, same_person
from bot.core.port import CorePort, Responder
from bot.core.transcript import Transcript

__all__ = [
    "Agent",
    "ApprovalDesk",
    "CorePort",
    "LoopLimits",
    "Permissions",
    "Responder",
    "ToolLoop",
    "Transcript",
    "TurnLimits",
    "load_permissions",
    "parse_permissions",
    "same_person",
]
