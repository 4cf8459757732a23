"""Errors the ticket actions raise for the dashboard (which catches LookupError / ValueError)."""

from __future__ import annotations

from bot.errors import VillagewatchError


class TicketNotFound(VillagewatchError, LookupError):
    """No ticket with that number."""


class TicketStateError(VillagewatchError, ValueError):
    """The ticket is not in a state that allows this (closed, already resolved, top level…)."""
