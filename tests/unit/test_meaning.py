"""Questions matched to the business's facts by meaning (pipeline/facts/relevance.py) with the
real sentence-embedding model, and the note they get. Pure logic around a real model: no
network, no LLM."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from pipeline import models
from pipeline.facts.business import Business, parse_dates, parse_hours, parse_items
from pipeline.facts.embedder import MiniLm
from pipeline.facts.note import ANSWER_ONLY_THE_REST
from pipeline.facts.relevance import FactIndex, parts_of, strip_fillers
from pipeline.facts.turns import CallFacts

VET = Business(
    name="Harbor Street Vets", timezone="America/New_York",
    hours=parse_hours(("mon-fri 08:00-18:00", "sat 09:00-13:00")),
    closed_dates=parse_dates(("2026-12-25 Christmas Day",)),
    address="48 Harbor Street", phone="555 0170",
    prices=parse_items(("vaccination: 35", "nail trim: 15", "check-up: 50"), "amount"),
    facts=("We treat cats, dogs, rabbits and other small pets.",),
    fallback="I'm sorry, I don't know that, but I can take a message.")
WED_10 = datetime(2026, 12, 9, 10, 0)  # a Wednesday


@pytest.fixture(scope="module")
def index() -> FactIndex:
    return FactIndex(VET, MiniLm(models.minilm_dir()))


def note_of(index: FactIndex, text: str) -> tuple[str, str]:
    facts = CallFacts(VET, index)
    wall = WED_10.replace(tzinfo=facts._zone).timestamp()
    n = facts.note(text, wall)
    return n, facts.then_say(n)


def test_embeddings_are_unit_length_and_paraphrases_are_nearer(index):
    emb = MiniLm(models.minilm_dir())
    a, b, c = (emb.embed(t) for t in ("How much is a haircut?", "What do you charge for a "
                                      "haircut?", "The train leaves at noon."))
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-5
    assert float(a @ b) > 0.7 > 0.3 > float(a @ c)


@pytest.mark.parametrize("text, parts", [
    ("Yeah hi, I wanted to check, could I come by on Saturday?",
     ["could I come by on Saturday?"]),
    ("How much are the shots, and do I need an appointment for them?",
     ["How much are the shots", "do I need an appointment for them?"]),
    ("My kid's birthday is Saturday. Can I get a cake?",
     ["My kid's birthday is Saturday. Can I get a cake?"]),
    ("Thanks, that's all.", []),
    ("My name is Anna Berg.", []),
])
def test_a_turn_is_cut_into_its_questions(text, parts):
    assert parts_of(text) == parts


def test_fillers_and_you_guys_are_not_topics():
    assert strip_fillers("Hi, um, I was wondering what you guys charge?") == "what you charge?"


def test_a_service_named_in_other_words_gets_its_price(index):
    n, then = note_of(index, "Hi, um, I was wondering what you guys charge for trimming a "
                             "dog's nails?")
    assert "One nail trim costs 15 dollars." in n and VET.fallback not in n and not then


def test_fillers_do_not_change_the_verdict(index):
    plain, _ = note_of(index, "How much is a nail trim?")
    chatty, _ = note_of(index, "Yeah hi, so, um, how much is a nail trim, please?")
    assert plain == chatty


def test_a_question_no_fact_is_near_gets_the_fallback(index):
    n, then = note_of(index, "My puppy needs a microchip, can you do that?")
    assert "say nothing about this" in n and VET.fallback in n and not then
    # near some facts, but about what they never mention
    n, _ = note_of(index, "Do you take credit cards?")
    assert "say nothing about this" in n and "Nearest facts" not in n


def test_a_question_answered_in_part_gets_that_part_then_the_fallback(index):
    n, then = note_of(index, "Do you treat rabbits, and do you take pet insurance?")
    assert "We treat cats, dogs, rabbits" in n and ANSWER_ONLY_THE_REST in n
    assert then == VET.fallback  # said by the gateway after the model's answer
    assert CallFacts.whole_answer(n) == ""


def test_a_part_with_a_computed_answer_and_the_fallback_are_the_whole_answer(index):
    n, then = note_of(index, "What do you charge to trim my dog's nails, and do I need an "
                             "appointment?")
    # said by the gateway without the model, which also answered the other question
    assert CallFacts.whole_answer(n) == f"A nail trim costs 15 dollars. {VET.fallback}"
    assert ANSWER_ONLY_THE_REST not in n and not then


def test_a_question_about_something_else_on_a_day_is_not_an_hours_question(index):
    n, _ = note_of(index, "Can you board my dog over Christmas?")
    assert 'Begin your answer with "No,"' not in n and VET.fallback in n
    n, _ = note_of(index, "Is there any way someone could see my cat this Sunday?")
    assert n.endswith('Begin your answer with "No,".')


@pytest.mark.parametrize("text, verdict", [
    ("Could I come by on Saturday morning?", "Yes: in the morning on Saturday"),
    ("Are you open after work today?", "Yes: after work today"),
    ("Can I bring him in tonight?", "No: in the evening today"),
    ("What about Saturday evening?", "No: in the evening on Saturday, December 12"),
])
def test_loose_times_resolve_to_the_hours(index, text, verdict):
    n, _ = note_of(index, text)
    assert verdict in n and VET.fallback not in n


def test_working_on_a_day_is_being_open_that_day(index):
    n, _ = note_of(index, "Do you work on Saturdays?")
    assert n.endswith('Begin your answer with "Yes,".') and VET.fallback not in n


def test_an_item_named_in_other_words_for_a_day_keeps_its_fact():
    # the whole question is near the platter's lead time; its words without the days alone
    # ("a buffet tray if I put the order in") are not, and were taken for an unknown topic
    bakery = Business(name="Mill Bakery", timezone="America/Chicago",
                      hours=parse_hours(("wed-sun 07:00-15:00",)),
                      prices=parse_items(("sourdough loaf: 6", "party platter: 45"), "amount"),
                      lead_times=parse_items(("party platter: 1",), "days"),
                      fallback="I don't know that.")
    facts = CallFacts(bakery, FactIndex(bakery, MiniLm(models.minilm_dir())))
    wall = datetime(2026, 12, 3, 9, 0).replace(tzinfo=facts._zone).timestamp()  # a Thursday
    n = facts.note("Could I get a buffet tray for Saturday if I put the order in tomorrow?",
                   wall)
    assert "Yes: a party platter on Saturday" in n and bakery.fallback not in n


def test_a_turn_the_facts_may_not_answer_is_watched_for_guesses(index):
    facts = CallFacts(VET, index)
    for text in ("Who's the vet on duty today?", "Do you treat rabbits, and do you take pet "
                 "insurance?"):
        n, _ = note_of(index, text)
        assert facts.instead_of_guessing(n) == VET.fallback, n
    n, _ = note_of(index, "How much is a nail trim?")
    assert facts.instead_of_guessing(n) == ""


def test_whether_the_business_does_an_item_it_prices_is_yes(index):
    n, _ = note_of(index, "Do you guys do nail trims?")
    assert 'Begin your answer with "Yes, a nail trim costs 15 dollars."' in n
    n, _ = note_of(index, "Do you do nail trims, and do you take pet insurance?")
    assert 'Begin your answer with "Yes,".' in n and ANSWER_ONLY_THE_REST in n
