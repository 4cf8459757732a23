"""Who is responsible: village + category → the cadre who handles it, else the village head; above the
village, the township's discipline staff, then the county's."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Member, Ticket
from storage.repos import directory as directory_repo
from storage.repos import tickets as repo


def pick_cadre(cadres: list[Member], category: str | None) -> Member | None:
    for cadre in cadres:
        if category and category in (cadre.categories or []):
            return cadre
    for cadre in cadres:
        if cadre.is_head:
            return cadre
    return cadres[0] if cadres else None


def township_staff(staff: list[Member], *, township: str) -> list[Member]:
    return [s for s in staff if township and s.township == township]


def county_staff(staff: list[Member], *, county: str) -> list[Member]:
    """Staff above the townships: of ``county``, or of no county (the whole deployment)."""
    return [s for s in staff if not s.township and (not county or not s.county or s.county == county)]


def staff_for(staff: list[Member], *, township: str, county: str) -> list[Member]:
    """Who supervises a place: its township's discipline staff, else the county's. The one rule for
    approvers of extensions, recipients of alerts and the township level's assignee."""
    return township_staff(staff, township=township) or county_staff(staff, county=county)


def pick_staff(staff: list[Member], *, level: str, township: str, county: str) -> Member | None:
    """Township staff for ``township`` (then county staff); county staff for ``county``."""
    if level == "township":
        candidates = staff_for(staff, township=township, county=county)
    else:
        candidates = county_staff(staff, county=county) or [s for s in staff if county and s.county == county]
    return candidates[0] if candidates else None


async def responsible(
    session: AsyncSession, *, level: str, village: str, township: str, county: str, category: str | None
) -> Member | None:
    if level == "village":
        cadre = pick_cadre(await directory_repo.village_cadres(session, village=village), category) if village else None
        if cadre is not None:
            return cadre
        level = "township"
    return pick_staff(await repo.all_staff(session), level=level, township=township, county=county)


def may_act(ticket: Ticket, member: Member) -> bool:
    """The assignee, the village's cadres, and staff of the ticket's township or county."""
    if member.role == "staff":
        if member.county and ticket.county and member.county != ticket.county:
            return False
        return not (member.township and ticket.township and member.township != ticket.township)
    if member.role != "cadre" or ticket.confidential:
        return False
    return member.platform_id == ticket.assignee_platform_id or (
        bool(ticket.village) and member.village == ticket.village
    )


def may_see(ticket: Ticket, member: Member) -> bool:
    """Confidential tickets exist only for staff (and their reporters); a cadre is told nothing about them."""
    return not ticket.confidential or member.role == "staff"
