"""The ticket state machine (bot/tickets/states.py): the transition table, refusals, and a stateful
property test over random action sequences checking the invariants."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot.clock import CHINA
from bot.templates import Templates
from bot.tickets import states
from bot.tickets.states import Action, Op, Reason, Refusal, Role, Stage, State

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=CHINA)
REPORTERS = ("高某林", "张大妈", "陈二嫂")
DEADLINE_OPS = {Op.EXTEND, Op.ESCALATE, Op.REOPEN, Op.RATE}
"""The only actions whose outcome may carry a new deadline: an approved extension, a new level's term,
a reopening's new term (staff, or a reporter's 不满意)."""


def test_every_stage_has_one_status_and_every_refusal_has_wording() -> None:
    assert set(states.STATUS_OF) == set(Stage)
    assert {s.status for s in (State(stage) for stage in Stage)} == set(states.Status)
    templates = Templates()
    for reason in Reason:
        text = templates.render(Refusal(reason).template, ticket_id=7)
        assert "#7" in text and not any(ch.isascii() and ch.isalpha() for ch in text.replace("#", "")), text


def test_closed_ticket_offers_no_escalation_or_extension() -> None:
    for stage in states.CLOSED:
        offered = states.available(State(stage), Role.STAFF)
        assert Op.ESCALATE not in offered and Op.EXTEND not in offered and Op.RESOLVE not in offered
        assert (Op.REOPEN in offered) == (stage != Stage.MERGED) and Op.NOTE in offered


@pytest.mark.parametrize(
    ("stage", "op", "role", "reason"),
    [
        (Stage.RATED, Op.ESCALATE, Role.STAFF, Reason.CLOSED),
        (Stage.AWAITING_RATING, Op.RESOLVE, Role.CADRE, Reason.RESOLVED),
        (Stage.IN_PROGRESS, Op.ACCEPT, Role.CADRE, Reason.ACCEPTED),
        (Stage.IN_PROGRESS, Op.CLOSE, Role.STAFF, Reason.NOT_RESOLVED),
        (Stage.AWAITING_PHOTO, Op.CLOSE, Role.STAFF, Reason.AWAITING_PHOTO),
        (Stage.NEW, Op.EXTEND, Role.CADRE, Reason.NOT_ALLOWED),
        (Stage.EXTENSION_REQUESTED, Op.REQUEST_EXTENSION, Role.CADRE, Reason.EXTENSION_PENDING),
        (Stage.NEW, Op.REOPEN, Role.STAFF, Reason.ACTIVE),
        (Stage.NEW, Op.WAIVE_PHOTO, Role.STAFF, Reason.NOT_AWAITING_PHOTO),
    ],
)
def test_refusals(stage: Stage, op: Op, role: Role, reason: Reason) -> None:
    assert states.apply(State(stage, reporters=("a",)), Action(op, T0), role) == Refusal(reason)


def test_top_level_cannot_escalate() -> None:
    assert states.apply(State(Stage.NEW, level="county"), Action(Op.ESCALATE, T0), Role.STAFF) == Refusal(Reason.TOP)


def test_resolve_without_photo_waits_for_it_and_with_photo_asks_for_ratings() -> None:
    new = State(Stage.IN_PROGRESS, reporters=("a",))
    waiting = states.apply(new, Action(Op.RESOLVE, T0, text="修好了"), Role.CADRE)
    assert not isinstance(waiting, Refusal) and waiting.state.stage == Stage.AWAITING_PHOTO
    assert waiting.state.status == states.Status.RESOLVED and waiting.state.rating_requested_at is None
    with_photo = states.apply(new, Action(Op.RESOLVE, T0, photo=True), Role.CADRE)
    assert not isinstance(with_photo, Refusal) and with_photo.state.stage == Stage.AWAITING_RATING
    consult = states.apply(State(Stage.NEW, kind="consult"), Action(Op.RESOLVE, T0), Role.CADRE)
    assert not isinstance(consult, Refusal) and consult.state.stage == Stage.AWAITING_RATING
    waived = states.apply(waiting.state, Action(Op.WAIVE_PHOTO, T0), Role.STAFF)
    assert not isinstance(waived, Refusal) and waived.state.stage == Stage.AWAITING_RATING
    assert waived.state.photo_missing


def test_every_reporter_rates_and_the_worst_rating_is_the_summary() -> None:
    state = State(Stage.AWAITING_RATING, reporters=REPORTERS)
    first = states.apply(state, Action(Op.RATE, T0, rating="satisfied", rater="高某林"), Role.REPORTER)
    assert not isinstance(first, Refusal) and first.state.stage == Stage.AWAITING_RATING
    second = states.apply(first.state, Action(Op.RATE, T0, rating="basically_satisfied", rater="张大妈"), Role.REPORTER)
    assert not isinstance(second, Refusal) and second.state.rating == "basically_satisfied"
    third = states.apply(second.state, Action(Op.RATE, T0, rating="satisfied", rater="陈二嫂"), Role.REPORTER)
    assert not isinstance(third, Refusal) and third.state.stage == Stage.RATED and third.closed_now
    assert third.state.rating == "basically_satisfied"
    assert states.summary({"a": "satisfied", "b": "unsatisfied"}) == "unsatisfied"
    assert states.summary({}) is None
    stranger = states.apply(state, Action(Op.RATE, T0, rating="satisfied", rater="路人"), Role.REPORTER)
    assert stranger == Refusal(Reason.NOT_REPORTER)


class TicketMachine(RuleBasedStateMachine):
    """Random sequences of actions by random roles on one ticket; refused actions must change nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.state = State(Stage.NEW)
        self.at = T0
        self.last: tuple[Op, State, State | Refusal] | None = None
        self.announced_in_group = False

    @initialize(
        kind=st.sampled_from(["demand", "consult", "clue"]),
        reporters=st.integers(min_value=1, max_value=3),
    )
    def open_ticket(self, kind: str, reporters: int) -> None:
        confidential = kind == "clue"
        self.state = State(
            Stage.NEW,
            kind=kind,
            level="township" if confidential else "village",
            confidential=confidential,
            deadline=T0 + timedelta(days=14),
            reporters=REPORTERS[:reporters],
        )

    @rule(
        op=st.sampled_from(list(Op)),
        role=st.sampled_from(list(Role)),
        photo=st.booleans(),
        rating=st.sampled_from(list(states.Rating)),
        rater=st.sampled_from([*REPORTERS, "路人"]),
        days=st.integers(min_value=0, max_value=10),
    )
    def act(self, op: Op, role: Role, photo: bool, rating: str, rater: str, days: int) -> None:
        self.at += timedelta(hours=5)
        deadline = self.at + timedelta(days=days) if days else None
        action = Action(op, self.at, text="说明", photo=photo, deadline=deadline, rating=rating, rater=rater)
        before = self.state
        outcome = states.apply(before, action, role)
        if isinstance(outcome, Refusal):
            assert not states.allowed(before, op, role) or op in (Op.EXTEND, Op.RATE)
            self.last = (op, before, outcome)
            return
        assert states.allowed(before, op, role)
        self.state = outcome.state
        self.last = (op, before, outcome.state)
        if self.state.stage == Stage.AWAITING_RATING and before.stage != Stage.AWAITING_RATING:
            # the resolution is announced where the reporters are: a group only for a public ticket
            self.announced_in_group = self.announced_in_group or not self.state.confidential

    @invariant()
    def status_follows_stage(self) -> None:
        assert self.state.status == states.STATUS_OF[self.state.stage]

    @invariant()
    def closed_has_rating_or_recorded_no_answer(self) -> None:
        if self.state.status == states.Status.CLOSED:
            assert self.state.closed_at is not None
            assert (self.state.stage == Stage.RATED) == (self.state.rating is not None)
            assert self.state.stage in (Stage.RATED, Stage.NO_ANSWER, Stage.MERGED)

    @invariant()
    def confidential_ticket_never_reaches_a_group(self) -> None:
        if self.state.confidential:
            assert not self.announced_in_group

    @invariant()
    def deadline_moves_only_by_extension_level_or_reopening(self) -> None:
        if self.last is None:
            return
        op, before, after = self.last
        if isinstance(after, Refusal):
            return
        if after.deadline != before.deadline:
            assert op in DEADLINE_OPS, op
            if op == Op.RATE:
                assert after.stage == Stage.IN_PROGRESS  # only a 不满意 reopening

    @invariant()
    def refused_action_changes_nothing(self) -> None:
        if self.last is not None and isinstance(self.last[2], Refusal):
            assert self.state == self.last[1]

    @invariant()
    def resolved_ticket_asked_for_ratings_only_when_announced(self) -> None:
        if self.state.stage == Stage.AWAITING_RATING:
            assert self.state.rating_requested_at is not None and self.state.resolved_at is not None
        if self.state.stage == Stage.AWAITING_PHOTO:
            assert self.state.rating_requested_at is None and self.state.kind == "demand"


TicketMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_ticket_machine = TicketMachine.TestCase
