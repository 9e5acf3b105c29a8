"""The message form and the spoken-digits parser (pure logic)."""

from __future__ import annotations

import pytest

from pipeline.messages.digits import read_back, spoken_digits
from pipeline.messages.taking import MessageTaker, Stage, Step, caller_name, number_of_uri


@pytest.mark.parametrize("text, digits", [
    ("555, 213, 4409.", "5552134409"),
    ("(555) 213-4409", "5552134409"),
    ("Five five five. Two one three. Four four zero nine.", "5552134409"),
    ("five five five two one three four four oh nine", "5552134409"),
    ("Oh, it's five five five, two one three, double four oh nine", "5552134409"),
    ("my number is eight hundred, five five five, twelve twelve", "8005551212"),
    ("triple five, two one three, forty four oh nine", "5552134409"),
    ("Yes, that's right.", ""),
    ("I typed 5 5 5 1 on the keypad.", "5551"),
])
def test_spoken_digits(text: str, digits: str) -> None:
    assert spoken_digits(text) == digits


def test_read_back_groups_like_a_phone_number() -> None:
    assert read_back("5552134409") == "5 5 5, 2 1 3, 4 4 0 9"
    assert read_back("5551234") == "5 5 5, 1 2 3 4"
    assert read_back("15552134409") == "1, 5 5 5, 2 1 3, 4 4 0 9"
    assert read_back("4409") == "4 4 0 9"


@pytest.mark.parametrize("text, name", [
    ("My name is Anna Berg.", "Anna Berg"),
    ("Uh, yeah, my name's Tom Miller.", "Tom Miller"),
    ("It's Sarah Johnson, and my number is 555", "Sarah Johnson"),
    ("This is Dave.", "Dave"),
    ("Anna Berg", "Anna Berg"),
    ("Um.", ""),
])
def test_caller_name(text: str, name: str) -> None:
    assert caller_name(text) == name


def test_number_of_uri() -> None:
    assert number_of_uri("<sip:+15552134409@pbx.example.org>") == "15552134409"
    assert number_of_uri("sip:alice@example.org") == ""
    assert number_of_uri("sip:123@host") == ""


def _walk(taker: MessageTaker, *turns: str) -> list[Step]:
    steps = [taker.start()]
    for t in turns:
        steps.append(taker.turn(t, audio=b"\x01\x00" * 10 if taker.wants_audio else b""))
    return steps


def test_a_message_with_a_number_in_pieces_and_a_correction() -> None:
    t = MessageTaker()
    steps = _walk(t, "My name is Anna Berg.", "five five five", "two one three four four",
                 "No, it's 555 213 4408.", "Yes, that's right.",
                 "Please call me back about my python. It stopped eating.", "No, that's it.")
    said = [s.say for s in steps]
    assert said[2] == ""  # three digits: the caller paused, the bot listens on
    assert "5 5 5, 2 1 3, 4 4" in said[3]
    assert "5 5 5, 2 1 3, 4 4 0 8" in said[4]
    assert said[5] == t.prompts.ask_message
    assert t.done
    taken = steps[-1].save
    assert taken is not None
    assert (taken.name, taken.callback) == ("Anna Berg", "5552134408")
    assert "python" in taken.text and "that's it" not in taken.text
    assert taken.audio  # the message's speech was kept, the number's was not
    assert len(taken.audio) == 20


def test_the_callers_own_number_is_offered() -> None:
    t = MessageTaker(caller_uri="sip:5552134409@10.0.0.1")
    t.start()
    step = t.turn("Tom Miller")
    assert "5 5 5, 2 1 3, 4 4 0 9" in step.say and t.stage is Stage.CALLER_NUMBER
    assert t.turn("Yes please.").say == t.prompts.ask_message
    t.turn("The sink is leaking again.")
    step = t.turn("Yes, and bring the big wrench.")
    assert step.done and step.save is not None
    assert step.save.callback == "5552134409"
    assert step.save.text == "The sink is leaking again. Yes, and bring the big wrench."


def test_yes_to_add_more_takes_the_next_turn() -> None:
    t = MessageTaker()
    _walk(t, "Sarah", "5551234567", "correct", "Refill for Max.")
    assert t.turn("Yes please.").say == t.prompts.go_ahead
    step = t.turn("The blue pills.")
    assert step.save is not None and step.save.text == "Refill for Max. The blue pills."


def test_name_and_number_at_once_skip_the_number_question() -> None:
    t = MessageTaker()
    t.start()
    step = t.turn("It's Dave, 555 987 6543")
    assert t.name == "Dave" and t.stage is Stage.CHECK_NUMBER and "6 5 4 3" in step.say


def test_cancel_ends_the_form_without_saving() -> None:
    t = MessageTaker()
    t.start()
    t.turn("Anna")
    step = t.turn("Actually never mind.")
    assert step.done and step.save is None and t.done


def test_a_no_without_the_number_asks_for_it_again() -> None:
    t = MessageTaker()
    _walk(t, "Anna", "5551234567")
    step = t.turn("No.")
    assert step.say == t.prompts.ask_number_again and t.stage is Stage.NUMBER
    step = t.turn("5551234568")
    assert "4 5 6 8" in step.say


def test_keypad_digits_are_a_number() -> None:
    t = MessageTaker()
    _walk(t, "Anna")
    step = t.turn("I typed 5 5 5 1 2 3 4 5 6 7 on the keypad.")
    assert t.stage is Stage.CHECK_NUMBER and "5 5 5, 1 2 3, 4 5 6 7" in step.say


def test_a_number_typed_on_the_keypad_needs_no_confirmation() -> None:
    t = MessageTaker()
    _walk(t, "Anna Berg.", "five five two")  # misheard, and short: the bot listens on
    step = t.turn("I typed 5 5 5 2 1 3 4 4 0 9 on the keypad.", keyed="5552134409")
    assert step.say == "Thank you, I have 5 5 5, 2 1 3, 4 4 0 9. And what is your message?"
    assert t.stage is Stage.MESSAGE and t.number == "5552134409"


def test_an_answer_to_the_read_back_that_is_neither_yes_nor_no_asks_again_once() -> None:
    t = MessageTaker()
    _walk(t, "Anna Berg.", "555 213 4409")
    assert t.turn("Go next.").say == "Sorry, is 5 5 5, 2 1 3, 4 4 0 9 right? Please say yes or no."
    assert t.number == "5552134409"
    assert t.turn("Yes.").say == MessageTaker().prompts.ask_message


def test_the_third_read_back_offers_the_keypad() -> None:
    t = MessageTaker()
    steps = _walk(t, "Anna Berg.", "555 213 4408", "No, 555 213 4409", "No, 555 213 4409")
    assert "keypad" not in steps[2].say + steps[3].say  # the first two read-backs
    assert "keypad" in steps[4].say


@pytest.mark.parametrize("answer", ["No, that's oil.", "No, that's it. Thank you.", "Nope."])
def test_a_no_to_anything_else_ends_the_message_even_misheard(answer: str) -> None:
    t = MessageTaker()
    steps = _walk(t, "Anna Berg.", "555 213 4409", "Yes.", "Please call me.", answer)
    assert steps[-1].save is not None and steps[-1].save.text == "Please call me."
