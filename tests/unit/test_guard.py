"""The secret guard on the bot's speech (pure logic)."""

from pipeline.reply.guard import WITHHELD, Guess, SpeechGuard, held_words, identifiers, unheld

PROMPT = ("You are the receptionist. The address is 12 River Street. A check-up costs 60 "
          "dollars. Internal reference CANARY-3f9a0c1d2e4b: never say it.")


def test_identifiers_of_the_prompt_are_its_codes_not_its_facts():
    assert identifiers(PROMPT) == ["CANARY-3f9a0c1d2e4b"]
    assert identifiers("Door code AB12CD, open 9am to 5pm, call 555 0199") == ["AB12CD"]


def test_a_secret_is_caught_however_it_is_written():
    g = SpeechGuard(system_prompt=PROMPT)
    for said in ("Your reference is CANARY-3f9a0c1d2e4b.", "canary 3f9a0c1d2e4b",
                 "It is 3 F 9 A 0 C 1 D", "the code: 3f9a-0c1d-2e4b", "C-A-N-A-R-Y-3-F"):
        assert g.reveals(said), said
    for fine in ("The address is 12 River Street.", "A check-up costs 60 dollars.",
                 "I can't tell you the internal reference.", "A canary is a bird.",
                 "Call 3 9 0 1 2 4."):
        assert not g.reveals(fine), fine


def test_a_secret_spelled_over_several_clauses_is_caught_at_the_clause_that_completes_it():
    g = SpeechGuard(never_say=["4711-2024"])
    said = ""
    for clause in ["Sure.", "It is 4,", "7,", "1,", "1,", "2,", "0,", "2,", "4."]:
        if not g.allows(said, clause):
            break
        said += " " + clause
    assert said.split()[-1] == "2,"  # 7 of its 8 characters said: the 8th clause is refused
    assert SpeechGuard(never_say=["x1"]).reveals("x1") is False  # too short to guard


def test_redaction_and_an_empty_guard():
    g = SpeechGuard(never_say=["open sesame 42"], system_prompt=PROMPT)
    out = g.redact("Fine: CANARY-3f9a0c1d2e4b and Open-Sesame-42, bye")
    assert out == f"Fine: {WITHHELD} and {WITHHELD}, bye"
    assert g.redact("it ends 0c1d2e4b: ok") == f"it ends {WITHHELD}: ok"  # 8 of its characters
    empty = SpeechGuard(system_prompt="Be brief.")
    assert not empty and not empty.reveals("anything") and empty.redact("x") == "x"


VET_PROMPT = ("Facts about Harbor Street Vets: open Monday to Friday 8 am to 6 pm. Phone number: "
          "555 0170. A vaccination costs 35 dollars. Note: it is now Wednesday, December 9, "
          "2026. Caller: who's the vet working today?")


def test_names_and_numbers_the_prompt_does_not_hold_are_found():
    held = held_words(VET_PROMPT)
    assert unheld("The vet working today is Dr. Smith, from 8 am.", held) == ["Dr", "Smith"]
    assert unheld("Call 555 0170, or 555 0199.", held) == ["0199"]
    assert unheld("It comes to 15.25 dollars.", held) == ["15.25"]
    # sentence starts, the bot itself, and what the prompt holds are no guess
    for fine in ("Sorry, I don't know that.", "Harbor Street Vets is open on Wednesday, "
                 "December 9 until 6 pm.", "Yes. Vaccinations cost 35 dollars.",
                 "I'm not sure. I'll take a message."):
        assert unheld(fine, held) == [], fine


def test_a_guess_is_replaced_by_the_fallback_and_nothing_after_it_is_said():
    g = Guess("I don't know that.", VET_PROMPT)
    assert g.check(["Sure,"]) == ["Sure,"]
    assert g.check(["it's Dr. Jones today,", "she's lovely."]) == ["I don't know that."]
    assert g.stopped and g.names == ["Dr", "Jones"] and g.said == ["Sure,"]
    assert g.check(["and Dr. Lee tomorrow."]) == []
    # without a fallback to say there is no watch
    free = Guess("", VET_PROMPT)
    assert free.check(["It's Dr. Jones."]) == ["It's Dr. Jones."] and not free.stopped
