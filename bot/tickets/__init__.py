"""The ticket workflow: from a villager's message to a rated resolution photo in the group."""

from bot.tickets.actions import TicketActions
from bot.tickets.errors import TicketNotFound, TicketStateError
from bot.tickets.report import tickets_as_json, tickets_as_text
from bot.tickets.workflow import TicketWorkflow

__all__ = [
    "TicketActions",
    "TicketNotFound",
    "TicketStateError",
    "TicketWorkflow",
    "tickets_as_json",
    "tickets_as_text",
]
