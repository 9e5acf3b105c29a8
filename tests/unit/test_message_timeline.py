"""Taking a message on one call's scripted timeline (see test_session_timeline.py): the
fallback's offer, the caller's yes, the taker's questions, the message saved before the bot
says so, and a failed save told as such."""

from __future__ import annotations

from pipeline.core.conversation import State
from pipeline.messages.taking import MessagePrompts, TakenMessage
from tests.unit.scripted_session import assistant_lines, in_call, make_session, says

FALLBACK = "I'm sorry, I don't know that."
OFFER = "Would you like to leave a message?"


class Desk:
    """Where the session's messages go (the gateway's store in service)."""

    def __init__(self, fail: bool = False) -> None:
        self.saved: list[TakenMessage] = []
        self.fail = fail
        self.lines_when_saved = -1
        self.session = None

    def save(self, message: TakenMessage) -> str:
        if self.fail:
            raise OSError("disk full")
        self.saved.append(message)
        self.lines_when_saved = len(assistant_lines(self.session))
        return "m-1"


def message_call(caller_turns: list[str], desk: Desk, llm_replies: list[str],
                 caller: str = "<sip:anna@127.0.0.1>"):
    session, _llm, failures = make_session(caller_turns, llm_replies, session_options={
        "messages": MessagePrompts(), "message_offer": OFFER, "offer_message_after": FALLBACK,
        "caller": caller, "desk": desk})
    desk.session = session
    with in_call(session, failures) as clock:
        for n, _ in enumerate(caller_turns):
            clock.until(lambda: session.core.state is State.LISTENING)
            says(clock)
            clock.until(lambda n=n: len(assistant_lines(session)) >= n + 2)
        clock.run(100)
        assert not failures
    return session, assistant_lines(session)


def test_the_fallback_offers_a_message_and_a_yes_takes_it():
    desk = Desk()
    turns = ["Do you treat snakes?", "Yes please.", "My name is Anna Berg.",
             "It's 555 213 4409.", "Yes, that's right.", "My python stopped eating.",
             "No, that's all."]
    session, lines = message_call(turns, desk, [FALLBACK])
    assert lines[1] == f"{FALLBACK} {OFFER}"
    assert lines[2] == "Sure, I can take a message. What is your name?"
    assert lines[4] == "I have 5 5 5, 2 1 3, 4 4 0 9. Is that right?"
    [m] = desk.saved
    assert (m.name, m.callback, m.text) == ("Anna Berg", "5552134409",
                                            "My python stopped eating.")
    assert len(m.audio) > 0  # the caller's speech of the message
    assert desk.lines_when_saved == 7  # saved before "Your message is saved" was said
    assert lines[7].startswith("Thank you. Your message is saved")
    entries = [e for t in session.turns for e in t.tools]
    assert entries[0]["decision"] == "offered" and entries[1]["confirmed"] is True
    assert entries[-1]["result"] == {"message_id": "m-1"}


def test_a_save_that_fails_is_told_to_the_caller():
    desk = Desk(fail=True)
    turns = ["Can I leave a message?", "Anna Berg.", "555 213 4409", "Yes.", "Call me.",
             "No."]
    session, lines = message_call(turns, desk, [])
    assert lines[-1] == MessagePrompts().not_saved
    assert not desk.saved
    assert [e["outcome"] for t in session.turns for e in t.tools if "outcome" in e] == ["error"]


def test_the_number_the_caller_calls_from_is_offered():
    desk = Desk()
    turns = ["I'd like to leave a message.", "Anna Berg.", "Yes, that one.", "See you soon.",
             "No."]
    _, lines = message_call(turns, desk, [], caller="<sip:+15552134409@pbx.example.org>")
    assert "calling from, 1, 5 5 5, 2 1 3, 4 4 0 9?" in lines[2]
    assert desk.saved[0].callback == "15552134409"
