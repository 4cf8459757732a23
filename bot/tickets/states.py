"""The ticket state machine: every state a ticket can be in, every action on it, and one entry,
:func:`apply`, that says what an action by an actor does to a ticket — the new state, or a typed refusal.

Pure: no database, no clock, no messages. The service reads a ticket, builds its :class:`State`, calls
:func:`apply` and writes the new state at the version it read (``UPDATE … WHERE version = :old``); chat
commands, dashboard actions and scheduled jobs all go through it. A refused action changes nothing.

Statuses are those of ``tickets --json`` (contracts.md); each stage belongs to exactly one status::

    open      new                       nobody has acted yet
    accepted  in_progress               accepted, progress noted, escalated or reopened
              extension_requested       a cadre asked for more time; staff approve (extend) or not
    resolved  awaiting_photo            resolved without a photo; the resolver was asked for one
              awaiting_rating           resolution announced; the reporters are asked to rate
    closed    rated                     at least one reporter rated (the ticket's rating: the worst given)
              no_answer                 nobody rated in time, or staff closed it unrated
              merged                    staff merged it into another ticket of the same problem

Rating summary: every reporter of a (merged) ticket rates; each rating is an event. The ticket's
``rating`` is the *worst* rating given in the current round (不满意 < 基本满意 < 满意), so one unhappy
reporter is never outvoted. The round closes when every reporter has rated, when the rating wait ends, or
when staff close it; one 不满意 reopens the ticket at once, one level up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Stage(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    EXTENSION_REQUESTED = "extension_requested"
    AWAITING_PHOTO = "awaiting_photo"
    AWAITING_RATING = "awaiting_rating"
    RATED = "rated"
    NO_ANSWER = "no_answer"
    MERGED = "merged"


STATUS_OF: Mapping[Stage, Status] = {
    Stage.NEW: Status.OPEN,
    Stage.IN_PROGRESS: Status.ACCEPTED,
    Stage.EXTENSION_REQUESTED: Status.ACCEPTED,
    Stage.AWAITING_PHOTO: Status.RESOLVED,
    Stage.AWAITING_RATING: Status.RESOLVED,
    Stage.RATED: Status.CLOSED,
    Stage.NO_ANSWER: Status.CLOSED,
    Stage.MERGED: Status.CLOSED,
}
ACTIVE = frozenset({Stage.NEW, Stage.IN_PROGRESS, Stage.EXTENSION_REQUESTED})
RESOLVED = frozenset({Stage.AWAITING_PHOTO, Stage.AWAITING_RATING})
CLOSED = frozenset({Stage.RATED, Stage.NO_ANSWER, Stage.MERGED})
ALL = ACTIVE | RESOLVED | CLOSED


def statuses(stages: frozenset[Stage]) -> tuple[str, ...]:
    """The ``tickets.status`` values of these stages, for queries."""
    return tuple(sorted({str(STATUS_OF[s]) for s in stages}))


def names(stages: frozenset[Stage]) -> tuple[str, ...]:
    return tuple(sorted(str(s) for s in stages))


class Op(StrEnum):
    ACCEPT = "accept"
    PROGRESS = "progress"
    RESOLVE = "resolve"
    ATTACH_PHOTO = "attach_photo"
    WAIVE_PHOTO = "waive_photo"
    REQUEST_EXTENSION = "request_extension"
    EXTEND = "extend"
    ESCALATE = "escalate"
    MARK_OVERDUE = "mark_overdue"
    TRANSFER = "transfer"
    RATE = "rate"
    EXPIRE_RATING = "expire_rating"
    CLOSE = "close"
    REOPEN = "reopen"
    NOTE = "note"
    SPLIT = "split"
    MERGE = "merge"
    """Another report or ticket joins this one (automatic 多人反映, or staff merging two tickets)."""
    MERGE_INTO = "merge_into"
    """Staff: this ticket is the same problem as another and goes into it."""


class Role(StrEnum):
    REPORTER = "reporter"
    CADRE = "cadre"
    STAFF = "staff"
    SYSTEM = "system"


class Rating(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"


WORST_FIRST = (Rating.UNSATISFIED, Rating.BASICALLY_SATISFIED, Rating.SATISFIED)
LEVELS = ("village", "township", "county")


def next_level(level: str) -> str | None:
    index = LEVELS.index(level) if level in LEVELS else 0
    return LEVELS[index + 1] if index + 1 < len(LEVELS) else None


def summary(ratings: Mapping[str, str] | tuple[tuple[str, str], ...]) -> str | None:
    """The ticket's rating from its reporters' ratings: the worst one given, None when nobody rated."""
    given = set(dict(ratings).values())
    return next((str(r) for r in WORST_FIRST if r in given), None)


class Reason(StrEnum):
    """Why an action was refused; each has a template ``ticket_refused_<reason>`` (bot/templates.toml)."""

    NOT_ALLOWED = "not_allowed"
    CLOSED = "closed"
    RESOLVED = "resolved"
    ACCEPTED = "accepted"
    NOT_RESOLVED = "not_resolved"
    ACTIVE = "active"
    TOP = "top"
    NOT_AWAITING_PHOTO = "not_awaiting_photo"
    NOT_AWAITING_RATING = "not_awaiting_rating"
    EXTENSION_PENDING = "extension_pending"
    NO_EXTENSION_DAYS = "no_extension_days"
    AWAITING_PHOTO = "awaiting_photo"
    SINGLE_REPORTER = "single_reporter"
    NOT_SAME_PLACE = "not_same_place"
    NOT_REPORTER = "not_reporter"
    CONFLICT = "conflict"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason

    @property
    def template(self) -> str:
        return f"ticket_refused_{self.reason}"


@dataclass(frozen=True, slots=True)
class State:
    """What the machine needs to know of a ticket (the service builds it from the row)."""

    stage: Stage
    kind: str = "demand"
    level: str = "village"
    confidential: bool = False
    deadline: datetime | None = None
    overdue: bool = False
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    rating_requested_at: datetime | None = None
    resolution_note: str | None = None
    photo_missing: bool = False
    rating: str | None = None
    reporters: tuple[str, ...] = ()
    ratings: tuple[tuple[str, str], ...] = ()
    """(reporter, rating) of the current round, one per reporter who rated."""

    @property
    def status(self) -> Status:
        return STATUS_OF[self.stage]


@dataclass(frozen=True, slots=True)
class Action:
    op: Op
    at: datetime
    text: str = ""
    """The resolution note (resolve), the reason or note otherwise."""
    photo: bool = False
    """resolve: a photo came with it; attach_photo: the photo could be stored (False: download failed)."""
    deadline: datetime | None = None
    """extend, escalate, reopen, rate 不满意: the new term the caller computed on the working-day calendar."""
    rating: str | None = None
    rater: str | None = None
    overdue: bool = False
    """escalate: by the daily check because the deadline passed."""


@dataclass(frozen=True, slots=True)
class Outcome:
    state: State
    raise_priority: bool = False
    level_changed: bool = False
    reset_ratings: bool = False
    closed_now: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)


# Who may ask for what. Scope (which village, township, confidential) is the roster's business
# (``roster.may_act``); this is the role's.
ROLES: Mapping[Op, frozenset[Role]] = {
    Op.ACCEPT: frozenset({Role.CADRE, Role.STAFF}),
    Op.PROGRESS: frozenset({Role.CADRE, Role.STAFF}),
    Op.RESOLVE: frozenset({Role.CADRE, Role.STAFF}),
    Op.ATTACH_PHOTO: frozenset({Role.CADRE, Role.STAFF}),
    Op.WAIVE_PHOTO: frozenset({Role.STAFF}),
    Op.REQUEST_EXTENSION: frozenset({Role.CADRE}),
    Op.EXTEND: frozenset({Role.STAFF}),
    Op.ESCALATE: frozenset({Role.CADRE, Role.STAFF, Role.SYSTEM}),
    Op.MARK_OVERDUE: frozenset({Role.SYSTEM}),
    Op.TRANSFER: frozenset({Role.STAFF}),
    Op.RATE: frozenset({Role.REPORTER}),
    Op.EXPIRE_RATING: frozenset({Role.SYSTEM}),
    Op.CLOSE: frozenset({Role.STAFF}),
    Op.REOPEN: frozenset({Role.STAFF}),
    Op.NOTE: frozenset({Role.CADRE, Role.STAFF}),
    Op.SPLIT: frozenset({Role.STAFF}),
    Op.MERGE: frozenset({Role.STAFF, Role.SYSTEM}),
    Op.MERGE_INTO: frozenset({Role.STAFF}),
}

# The transition table: (stage, op) → the stage after it. Stages absent for an op refuse it; ops whose
# target depends on the action (resolve, rate, …) are resolved in :func:`apply`.
_SAME = None
TABLE: Mapping[Op, Mapping[Stage, Stage | None]] = {
    Op.ACCEPT: {Stage.NEW: Stage.IN_PROGRESS},
    Op.PROGRESS: {
        Stage.NEW: Stage.IN_PROGRESS,
        Stage.IN_PROGRESS: _SAME,
        Stage.EXTENSION_REQUESTED: _SAME,
        Stage.AWAITING_PHOTO: _SAME,
        Stage.AWAITING_RATING: _SAME,
    },
    Op.RESOLVE: {s: Stage.AWAITING_RATING for s in ACTIVE},  # or awaiting_photo: see apply
    Op.ATTACH_PHOTO: {
        Stage.NEW: _SAME,
        Stage.IN_PROGRESS: _SAME,
        Stage.EXTENSION_REQUESTED: _SAME,
        Stage.AWAITING_PHOTO: Stage.AWAITING_RATING,
        Stage.AWAITING_RATING: _SAME,
    },
    Op.WAIVE_PHOTO: {Stage.AWAITING_PHOTO: Stage.AWAITING_RATING},
    Op.REQUEST_EXTENSION: {Stage.NEW: Stage.EXTENSION_REQUESTED, Stage.IN_PROGRESS: Stage.EXTENSION_REQUESTED},
    Op.EXTEND: {Stage.NEW: _SAME, Stage.IN_PROGRESS: _SAME, Stage.EXTENSION_REQUESTED: Stage.IN_PROGRESS},
    Op.ESCALATE: {Stage.NEW: _SAME, Stage.IN_PROGRESS: _SAME, Stage.EXTENSION_REQUESTED: Stage.IN_PROGRESS},
    Op.MARK_OVERDUE: {s: _SAME for s in ACTIVE},
    Op.TRANSFER: {s: _SAME for s in ACTIVE | RESOLVED},
    Op.RATE: {Stage.AWAITING_RATING: _SAME},  # or rated / in_progress: see apply
    Op.EXPIRE_RATING: {Stage.AWAITING_RATING: Stage.NO_ANSWER},  # rated when someone rated
    Op.CLOSE: {Stage.AWAITING_RATING: Stage.NO_ANSWER},  # rated when someone rated
    Op.REOPEN: {s: Stage.IN_PROGRESS for s in RESOLVED | {Stage.RATED, Stage.NO_ANSWER}},
    Op.NOTE: {s: _SAME for s in ALL},
    Op.SPLIT: {s: _SAME for s in ACTIVE},
    Op.MERGE: {s: _SAME for s in ACTIVE},
    Op.MERGE_INTO: {s: Stage.MERGED for s in ACTIVE},
}


def stages_allowing(op: Op) -> frozenset[Stage]:
    return frozenset(TABLE[op])


def allowed(state: State, op: Op, role: Role) -> bool:
    """Would :func:`apply` accept ``op`` by ``role`` now (menus: the page offers only these)."""
    return not isinstance(_check(state, op, role), Refusal)


def available(state: State, role: Role) -> list[Op]:
    return [op for op in Op if allowed(state, op, role)]


def _refusal_for(state: State, op: Op) -> Reason:
    stage = state.stage
    if stage in CLOSED:
        return Reason.CLOSED
    if op == Op.ACCEPT and stage in ACTIVE:
        return Reason.ACCEPTED
    if op == Op.WAIVE_PHOTO:
        return Reason.NOT_AWAITING_PHOTO
    if op in (Op.RATE, Op.EXPIRE_RATING):
        return Reason.NOT_AWAITING_RATING
    if op == Op.CLOSE:
        return Reason.AWAITING_PHOTO if stage == Stage.AWAITING_PHOTO else Reason.NOT_RESOLVED
    if op == Op.REOPEN:
        return Reason.CLOSED if stage == Stage.MERGED else Reason.ACTIVE
    if op in (Op.SPLIT, Op.MERGE, Op.MERGE_INTO) and stage in RESOLVED:
        return Reason.RESOLVED
    if op == Op.REQUEST_EXTENSION and stage == Stage.EXTENSION_REQUESTED:
        return Reason.EXTENSION_PENDING
    return Reason.RESOLVED


def _check(state: State, op: Op, role: Role) -> Refusal | Stage | None:
    if role not in ROLES[op]:
        return Refusal(Reason.NOT_ALLOWED)
    row = TABLE[op]
    if state.stage not in row:
        return Refusal(_refusal_for(state, op))
    if op == Op.ESCALATE and next_level(state.level) is None:
        return Refusal(Reason.TOP)
    if op == Op.SPLIT and len(state.reporters) < 2:
        return Refusal(Reason.SINGLE_REPORTER)
    return row[state.stage]


def apply(state: State, action: Action, role: Role) -> Outcome | Refusal:
    """What ``action`` by ``role`` does to a ticket in ``state``: an :class:`Outcome` or a :class:`Refusal`."""
    target = _check(state, action.op, role)
    if isinstance(target, Refusal):
        return target
    op, at = action.op, action.at
    stage = target or state.stage
    new = replace(state, stage=stage)
    if op in (Op.ACCEPT, Op.PROGRESS) and state.stage == Stage.NEW:
        new = replace(new, first_response_at=state.first_response_at or at)
    if op == Op.RESOLVE:
        needs_photo = state.kind == "demand" and not action.photo
        new = replace(
            new,
            stage=Stage.AWAITING_PHOTO if needs_photo else Stage.AWAITING_RATING,
            resolved_at=at,
            first_response_at=state.first_response_at or at,
            resolution_note=action.text or state.resolution_note,
            photo_missing=False,
            rating=None,
            ratings=(),
            rating_requested_at=None if needs_photo else at,
        )
        return Outcome(new, reset_ratings=True)
    if op in (Op.ATTACH_PHOTO, Op.WAIVE_PHOTO) and state.stage == Stage.AWAITING_PHOTO:
        missing = op == Op.WAIVE_PHOTO or not action.photo
        return Outcome(replace(new, rating_requested_at=at, photo_missing=missing))
    if op == Op.ATTACH_PHOTO and action.photo:
        return Outcome(replace(new, photo_missing=False))
    if op == Op.EXTEND:
        if action.deadline is None:
            return Refusal(Reason.NO_EXTENSION_DAYS)
        return Outcome(replace(new, deadline=action.deadline))
    if op == Op.ESCALATE:
        level = next_level(state.level)
        assert level is not None
        deadline = action.deadline
        if deadline is None or (state.deadline is not None and state.deadline > deadline and not action.overdue):
            deadline = state.deadline  # an approved extension beyond the new term stays
        new = replace(new, level=level, deadline=deadline, overdue=state.overdue or action.overdue)
        return Outcome(new, raise_priority=True, level_changed=True)
    if op == Op.MARK_OVERDUE:
        return Outcome(replace(new, overdue=True))
    if op == Op.RATE:
        return _rate(state, new, action)
    if op == Op.MERGE_INTO:
        return Outcome(replace(new, closed_at=at), closed_now=True)
    if op in (Op.EXPIRE_RATING, Op.CLOSE):
        closed = Stage.RATED if state.ratings else Stage.NO_ANSWER
        return Outcome(replace(new, stage=closed, closed_at=at, rating=summary(state.ratings)), closed_now=True)
    if op == Op.REOPEN:
        return Outcome(_reopened(new, action, level=state.level), raise_priority=True, reset_ratings=True)
    return Outcome(new)


def _reopened(new: State, action: Action, *, level: str) -> State:
    return replace(
        new,
        stage=Stage.IN_PROGRESS,
        level=level,
        deadline=action.deadline or new.deadline,
        resolved_at=None,
        closed_at=None,
        rating_requested_at=None,
        ratings=(),
    )


def _rate(state: State, new: State, action: Action) -> Outcome | Refusal:
    rater, rating = action.rater, action.rating
    if rater is None or rater not in state.reporters:
        return Refusal(Reason.NOT_REPORTER)
    if rating not in tuple(Rating):
        return Refusal(Reason.UNKNOWN)
    ratings = dict(state.ratings)
    ratings[rater] = str(rating)
    pairs = tuple(sorted(ratings.items()))
    if rating == Rating.UNSATISFIED:
        level = next_level(state.level) or state.level
        reopened = _reopened(new, action, level=level)
        return Outcome(
            replace(reopened, rating=str(Rating.UNSATISFIED)),
            raise_priority=True,
            level_changed=level != state.level,
            reset_ratings=True,
        )
    new = replace(new, ratings=pairs, rating=summary(pairs))
    if all(r in ratings for r in state.reporters):
        return Outcome(replace(new, stage=Stage.RATED, closed_at=action.at), closed_now=True)
    return Outcome(new)
