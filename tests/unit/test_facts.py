"""The business facts as data, and the note computed for each turn (pure logic)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.config import ConfigError, build, business_of
from pipeline.facts import mentions, spoken
from pipeline.facts.business import Business, parse_dates, parse_hours, parse_items
from pipeline.facts.note import note, opening
from pipeline.facts.prompt import facts_block
from pipeline.facts.turns import CallFacts
from pipeline.reply.history import ChatHistory

BAKERY = Business(
    name="Mill Bakery", timezone="America/Chicago",
    hours=parse_hours(("wed-sun 07:00-15:00",)),
    closed_dates=parse_dates(("2026-12-25 Christmas Day", "2026-12-26")),
    address="48 Mill Road", phone="555 0142",
    prices=parse_items(("sourdough loaf: 6", "croissant: 2.50", "birthday cake: 35"), "amount"),
    lead_times=parse_items(("birthday cake: 2",), "days"),
    facts=("Cakes are ordered by phone or in the shop.",))
CLINIC = Business(name="Clinic", hours=parse_hours(("mon-fri 08:00-12:00 13:00-17:30",)))
FRI_1605 = datetime(2026, 12, 4, 16, 5)  # a Friday


def note_for(text: str, now: datetime = FRI_1605, b: Business = BAKERY) -> str:
    m = mentions.find(text, now.date(), b.catalog(), b.closed_dates, now.hour * 60 + now.minute)
    return note(b, now, m, text)


def test_hours_parse_ranges_lists_and_wrapping_day_ranges():
    assert parse_hours(("mon-fri 08:00-12:00 13:00-17:30", "sat 09:00-13:00")) == {
        **{d: ((480, 720), (780, 1050)) for d in range(5)}, 5: ((540, 780),)}
    assert set(parse_hours(("fri-mon 10:00-11:00",))) == {4, 5, 6, 0}
    assert set(parse_hours(("mon,wed 10:00-11:00",))) == {0, 2}


@pytest.mark.parametrize("entry, words", [
    ("mon-fri 9-17", "HH:MM-HH:MM"), ("funday 09:00-10:00", "not a day"),
    ("mon 10:00-09:00", "start before it ends"), ("mon 09:00-12:00 11:00-13:00", "overlap"),
    ("mon", "expected DAYS")])
def test_bad_hours_say_what_is_wrong(entry, words):
    with pytest.raises(ValueError, match=words):
        parse_hours((entry,))


def test_bad_business_config_names_the_key():
    with pytest.raises(ConfigError, match=r"\[business\] hours"):
        build({"business": {"hours": ["mon-fri 9 to 5"]}})
    with pytest.raises(ConfigError, match=r"\[business\] timezone"):
        build({"business": {"timezone": "Mars/Olympus"}})
    with pytest.raises(ConfigError, match=r"\[business\] prices"):
        build({"business": {"prices": ["a loaf costs six"]}})
    with pytest.raises(ConfigError, match=r"\[business\] closed_dates"):
        build({"business": {"closed_dates": ["25/12/2026"]}})
    assert business_of(build({"business": {"name": ""}}).business) is None


def test_spoken_forms():
    assert [spoken.clock(m) for m in (540, 930, 720, 0, 1425)] == [
        "9 am", "3:30 pm", "12 noon", "midnight", "11:45 pm"]
    assert spoken.weekdays([2, 3, 4, 5, 6]) == "Wednesday to Sunday"
    assert spoken.weekdays([0, 2]) == "Monday and Wednesday"
    assert spoken.each_weekday([2, 3, 4]) == "Wednesday, Thursday and Friday"
    assert spoken.day(date(2026, 12, 4), comma=False) == "Friday December 4"
    assert spoken.money(2.5, "dollars") == "2.50 dollars"


def test_facts_block_groups_days_and_names_closures():
    text = facts_block(BAKERY)
    assert "Monday and Tuesday: closed; Wednesday to Sunday: 7 am to 3 pm" in text
    assert "December 25, 2026 (Christmas Day)" in text
    assert "birthday cake must be ordered at least 2 days ahead" in text


def test_days_named_in_words_resolve_against_today():
    today = date(2026, 12, 4)  # Friday
    days = mentions.find_days("are you open tomorrow or on sunday?", today)
    assert [d.day for d in days] == [date(2026, 12, 5), date(2026, 12, 6)]
    assert mentions.find_days("next friday", today)[0].day == date(2026, 12, 11)
    assert mentions.find_days("this friday", today)[0].day == today
    assert mentions.find_days("December 24th?", today)[0].day == date(2026, 12, 24)
    assert mentions.find_days("the 3rd of january", today)[0].day == date(2027, 1, 3)
    assert mentions.find_days("on Christmas Eve", today)[0].day == date(2026, 12, 24)
    assert mentions.find_days("the day after tomorrow", today)[0].day == date(2026, 12, 6)
    assert mentions.find_days("Are you open on Mondays?", today)[0].every
    assert [d.day for d in mentions.find_days("on Monday the 28th?", today)] == [
        date(2026, 12, 28)]


@pytest.mark.parametrize("text, minutes", [
    ("at 4 pm", 960), ("at 4 p.m.", 960), ("at 2:45", 885), ("by 9:30 a.m.", 570),
    ("half past 3", 930), ("quarter to 5", 1005), ("at noon", 720), ("at 8", 480),
    ("at four o'clock", 960), ("at 10 in the morning", 600), ("I have 2 kids", None),
    ("order 4512", None), ("like seven-thirty", 450), ("at eight fifteen", 495),
    ("say one-ish", 780), ("half three-ish", 930), ("for seven thirty-year-olds", None)])
def test_times_of_day(text, minutes):
    assert mentions.find_time(text) == minutes


def test_open_now_and_closed_now_with_the_next_opening():
    assert "is closed now; it opens again Saturday, December 5 at 7 am" in note_for(
        "Are you open right now?")
    assert "is open now, until 3 pm" in note_for(
        "Are you still open?", datetime(2026, 12, 4, 14, 59))


def test_a_time_just_outside_and_just_inside_the_hours():
    assert ("No: at 4 pm today (Friday, December 4) Mill Bakery is already closed; it closes "
            "at 3 pm") in note_for("Can I come by Friday at 4 pm?", datetime(2026, 12, 4, 9, 0))
    assert ("Yes: at 2:45 pm on Sunday, December 6 (in 2 days) Mill Bakery is open (until "
            "3 pm)") in note_for("Can I come Sunday at 2:45?")
    assert "is not open yet; it opens at 7 am" in note_for(
        "Can I come Saturday at 6:30 am?")


def test_a_lunch_break_is_a_break():
    n = note_for("Can I come Monday at 12:30?", FRI_1605, CLINIC)
    assert "closed for a break; it opens again at 1 pm" in n


def test_holidays_and_weekly_closures():
    assert ("On Friday, December 25 (in 21 days), Mill Bakery is closed all day (Christmas "
            "Day)") in note_for("Are you open on December 25th?")
    assert "Mill Bakery is closed every Monday" in note_for("Are you open on Mondays?")
    assert "On Tuesday, December 8 (in 4 days), Mill Bakery is closed all day" in note_for(
        "What about Tuesday?")


def test_prices_and_sums():
    n = note_for("How much are two loaves and a croissant?")
    assert "2 x sourdough loaf at 6 dollars each come to 12 dollars" in n
    # the total comes first, as the answer (the model read out a part's cost when it was last)
    assert n.splitlines()[1] == ("The answer: 2 x sourdough loaf and one croissant come to "
                                 "14.50 dollars in total.")


def test_a_count_before_of_the_is_the_item_s_count():
    found = mentions.find_items("two loaves of the sourdough and four of the croissants",
                                BAKERY.catalog())
    assert sorted((i.name, n) for i, n in found) == [("croissant", 4), ("sourdough loaf", 2)]
    n = note_for("What would two of those croissants and a couple of your birthday cakes be?")
    assert "come to 75 dollars in total" in n


def test_a_time_already_passed_today_is_read_as_tomorrow():
    n = note_for("Can I come by at 8?")
    assert "8 am today has already passed" in n
    assert "Yes: at 8 am tomorrow (Saturday, December 5)" in n and "at 8 am today" not in n


def test_a_lead_time_met_on_a_closed_day_is_still_no():
    assert "No: Mill Bakery is closed on Tuesday, December 8 (in 4 days), so a birthday cake" \
        in note_for("Can I get a birthday cake for Tuesday?")


def test_lead_times():
    assert ("No: a birthday cake tomorrow (Saturday, December 5) is too soon; it needs 2 "
            "days' notice, so the earliest day is Sunday, December 6") in note_for(
        "Can I order a birthday cake for tomorrow?")
    assert "Yes: a birthday cake on Sunday, December 6 (in 2 days) is possible" in note_for(
        "Can I get a cake for Sunday?")


def test_without_meaning_the_note_never_asks_for_the_fallback():
    # [business] meaning = false: the computed rules alone cannot tell what the facts miss
    assert BAKERY.fallback not in note_for("Can you microchip my puppy?")


def test_an_elliptical_follow_up_borrows_the_turn_before():
    facts = CallFacts(BAKERY)
    wall = datetime(2026, 12, 4, 16, 5, tzinfo=facts._zone).timestamp()
    facts.note("How much is a sourdough loaf?", wall)
    assert "3 x sourdough loaf" in facts.note("And three of them?", wall)
    facts.note("Are you open on Sunday?", wall)
    assert "at 2 pm on Sunday, December 6" in facts.note("And at 2 pm?", wall)
    # a speculative turn does not become the context
    facts.note("Is there parking?", wall, commit=False)
    assert "at 1 pm on Sunday" in facts.note("And at 1 pm?", wall)


def test_local_time_comes_from_the_business_time_zone():
    facts = CallFacts(BAKERY)
    # 22:05 UTC is 16:05 in Chicago in December
    wall = datetime(2026, 12, 4, 22, 5).timestamp() - datetime(
        1970, 1, 1).timestamp()
    assert facts.local(wall) == FRI_1605


def test_history_keeps_each_note_before_its_caller_line():
    h = ChatHistory("sys", max_turns=6)
    h.add_user("Are you open Sunday?", "note 1")
    h.add_bot("Yes, 7 to 3.")
    h.add_user("And Monday?", "note 2")
    msgs = h.messages()
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("system", "sys"), ("system", "note 1"), ("user", "Are you open Sunday?"),
        ("assistant", "Yes, 7 to 3."), ("system", "note 2"), ("user", "And Monday?")]
    assert all(set(m) == {"role", "content"} for m in msgs)
    h.retract_user()
    assert h.messages()[-1]["content"] == "Yes, 7 to 3."


def test_a_yes_no_question_gets_the_word_to_begin_with():
    assert note_for("Are you open on Mondays?").endswith('Begin your answer with "No,".')
    assert note_for("Can I come Sunday at 2:45?").endswith('Begin your answer with "Yes,".')
    assert note_for("Are you still open?", datetime(2026, 12, 4, 14, 0)).endswith(
        'Begin your answer with "Yes,".')
    n = note_for("What time do you close tomorrow?")
    assert '"Yes,"' not in n and '"No,"' not in n


def test_the_opening_a_note_gives_is_what_the_gateway_says_first():
    facts = CallFacts(BAKERY)
    wall = datetime(2026, 12, 4, 16, 5, tzinfo=facts._zone).timestamp()
    assert facts.opening(facts.note("Are you open on Mondays?", wall)) == "No,"
    # the day named as the caller named it (Saturday is tomorrow)
    assert facts.opening(facts.note("How late are you open on Saturday?", wall)) == (
        "On Saturday December 5, Mill Bakery is open from 7 am to 3 pm.")
    assert facts.opening(facts.note("How late are you open tomorrow?", wall)) == (
        "Tomorrow, Mill Bakery is open from 7 am to 3 pm.")
    # a question the facts do not decide has no opening: the model's words come first
    assert facts.opening(facts.note("Do you sell coffee?", wall)) == ""
    assert facts.opening("") == ""


def test_a_yes_no_question_about_something_else_gets_no_verdict_on_the_hours():
    # the yes/no half asks what the facts do not hold: a "Yes," would have answered it
    n = note_for("Do you guys deliver? And what time do you close Saturdays?")
    assert "Saturday" in n and '"Yes,"' not in n and '"No,"' not in n
    n = note_for("Do you guys deliver? And are you open Saturdays?")
    assert n.endswith('with "Yes,".')
    assert note_for("I need bread. Are you open on Mondays?").endswith('with "No,".')
    # a yes/no that points back at the statement before it
    assert note_for("I'd come by on Monday around eleven. Would that be alright?").endswith(
        'with "No,".')


def test_a_question_only_about_one_price_or_the_address_gets_the_whole_answer_first():
    def first(text: str) -> str:
        return opening(note_for(text))

    assert first("What do you charge for a sourdough loaf?") == "A sourdough loaf costs 6 dollars."
    assert first("Where are you guys located?") == "Mill Bakery is at 48 Mill Road."
    assert first("Where's the bakery?") == "Mill Bakery is at 48 Mill Road."
    # whether it sells an item it prices: yes, and the price
    assert first("Do you sell croissants?") == "Yes, a croissant costs 2.50 dollars."
    # not the address: where something else is; not one price: a lead time, a visit
    for text in ("Where can I park?", "How much is a birthday cake?", "What's in a croissant?",
                 "How much is a croissant on Sunday?",
                 # each price, not their sum
                 "What's a croissant, and what about a sourdough loaf?"):
        assert first(text) == "", text
    # a sum: its total
    assert first("How much are two croissants?") == "That comes to 5 dollars in total."
    assert first("What would a croissant and a sourdough loaf come to?") == (
        "That comes to 8.50 dollars in total.")


def test_items_pointed_back_at_join_the_items_named_now():
    facts = CallFacts(BAKERY)
    wall = datetime(2026, 12, 4, 11, 0, tzinfo=ZoneInfo(BAKERY.timezone)).timestamp()
    facts.note("How much is a sourdough loaf?", wall)
    n = facts.note("So if I got three of those and two croissants?", wall)
    assert "3 x sourdough loaf and 2 x croissant come to 23 dollars in total" in n, n
    facts.note("How much is a sourdough loaf?", wall)
    n = facts.note("What would that plus a croissant come to?", wall)
    assert opening(n) == "That comes to 8.50 dollars in total.", n
    # without items of the turn before, or pointing at nothing, nothing is added
    fresh = CallFacts(BAKERY)
    assert "sourdough" not in fresh.note("Is it plus tax for two croissants?", wall)
    facts.note("How much is a sourdough loaf?", wall)
    assert "sourdough" not in facts.note("How much is a croissant?", wall)


def test_yes_no_questions_follow_ups_and_still_open():
    facts = CallFacts(BAKERY)
    wall = datetime(2026, 12, 4, 16, 5, tzinfo=facts._zone).timestamp()
    assert facts.note("Are you open on Sunday?", wall).endswith('with "Yes,".')
    assert facts.note("And on Monday?", wall).endswith('with "No,".')
    # open today, but not any more at 4:05 pm
    assert note_for("Are you still open today?").endswith('with "No,".')
    n = note_for("I can only come on Sunday, around 2. Are you open then?")
    assert "Yes: at 2 pm on Sunday" in n and n.endswith('with "Yes,".')


def test_a_question_about_the_week_gets_the_weekly_hours():
    n = note_for("Which days are you open?")
    assert ("Mill Bakery is open on Wednesday, Thursday, Friday, Saturday and Sunday, and "
            "closed on Monday and Tuesday.") in n
    # the closed days once: not again in the hours
    assert "Mill Bakery's opening hours: Wednesday to Sunday: 7 am to 3 pm." in n
    assert " now" not in n.split("\n", 1)[1]  # "closed now": not what was asked


@pytest.mark.parametrize("text", [
    "Sorry, who have I called?", "Which bakery did I call?", "Who am I speaking to?",
    "What's the name of this place?", "What business is this?"])
def test_who_was_called_is_answered_with_the_name_not_the_fallback(text):
    n = note_for(text)
    assert n.endswith("The caller has reached Mill Bakery.") and "say nothing" not in n


def test_days_that_disagree_get_no_forced_yes_or_no():
    n = note_for("Are you open at the weekend?")  # Mill Bakery: open Saturday and Sunday
    assert n.endswith('Begin your answer with "Yes,".')
    n = note_for("Are you open on Mondays or Saturdays?")  # closed Mondays, open Saturdays
    assert n.endswith('Begin your answer with "Mill Bakery is open on Saturdays from 7 am to '
                      '3 pm, but closed on Mondays."')
    assert "every Monday" not in n  # the day lines give way to the answer that names both
    n = note_for("Are you open tomorrow and on December 25?")  # Saturday; Christmas Day
    assert n.endswith('"Mill Bakery is open tomorrow from 7 am to 3 pm, but closed on '
                      'Friday December 25."')


def test_open_every_day_is_a_yes_no_about_the_week():
    n = note_for("Are you open every day of the week?")
    assert "closed on Monday and Tuesday" in n and n.endswith('Begin your answer with "No,".')
    assert " now" not in n.split("\n", 1)[1]  # not "open now": the week was asked about
    n = note_for("Are you open seven days a week?", b=Business(
        name="Shop", hours=parse_hours(("mon-sun 09:00-17:00",))))
    assert n.endswith('Begin your answer with "Yes,".')


def test_days_that_differ_are_worded_only_for_a_question_about_the_hours():
    # two closed weekend days named in a question about something else: no hours answer
    n = note_for("Do you have an emergency number for Saturday and Sunday?",
                 datetime(2026, 12, 7, 9, 0), CLINIC)
    assert "Begin your answer" not in n and " is open ," not in n


def test_are_you_closed_gets_the_answer_to_that_question():
    assert note_for("Are you closed on Sundays?").endswith('with "No,".')  # open Sundays
    assert note_for("Are you closed on Mondays?").endswith('with "Yes,".')
    assert note_for("Are you closed now?").endswith('with "Yes,".')  # 4:05 pm, closes at 3
    assert note_for("Are you shut on Sunday at 2 pm?").endswith('with "No,".')
    assert note_for("Are you closed every day?").endswith('with "No,".')


def test_a_question_about_the_days_gets_them_as_its_answer():
    n = note_for("Which days do you bake?")
    assert 'Begin your answer with "Mill Bakery is open on Wednesday, Thursday, Friday, ' \
           'Saturday and Sunday, and closed on Monday and Tuesday."' in n
    assert 'with "Mill Bakery is closed on Monday and Tuesday, and open on' in note_for(
        "Which days are you closed?")
    assert "Begin your answer" not in note_for("What are your opening hours?")


def test_coming_in_on_a_day_asks_for_its_hours_and_without_one_does_not():
    n = note_for("Can I bring my car in on Monday?")
    assert "closed every Monday" in n or "closed all day" in n
    assert n.endswith('with "No,".')
    n = note_for("Can I bring my dog in?")
    assert "Begin your answer" not in n


@pytest.mark.parametrize("text, now, minutes", [
    ("if I come over in an hour or so will you still be open?", 870, 930),
    ("could I get there in twenty minutes?", 870, 890),
    ("I'll be there in half an hour", 600, 630),
    ("in about 45 minutes", 600, 645),
    ("in a couple of hours", 600, 720),
    ("in an hour and a half", 600, 690),
    ("in an hour", 23 * 60 + 30, None),  # past midnight: not a time of today
    ("in two days", 600, None),
])
def test_a_time_said_from_now(text, now, minutes):
    assert mentions.find_time(text, now) == minutes


@pytest.mark.parametrize("text, minutes", [
    ("say half three-ish", 930), ("around half six tonight", 1110),
    ("half past 3", 930), ("half a dozen rolls at 2", 840), ("half an hour", None)])
def test_half_an_hour_said_the_british_way(text, minutes):
    assert mentions.find_time(text) == minutes


def test_a_relative_time_gets_a_verdict_for_today():
    n = note_for("If I come over in an hour or so, will you still be open?",
                 datetime(2026, 12, 4, 14, 30))
    assert "No: at 3:30 pm today (Friday, December 4) Mill Bakery is already closed" in n
    assert n.endswith('Begin your answer with "No,".')


@pytest.mark.parametrize("text, said", [
    ("Could I come first thing tomorrow?", "first thing in the morning"),
    ("Can I pop in early tomorrow morning?", "first thing in the morning"),
    ("Are you open late in the afternoon on Sunday?", "late in the afternoon"),
    ("Is Saturday after school okay?", "after school"),
])
def test_loose_times_of_day(text, said):
    assert mentions.find(text, FRI_1605.date(), ()).period.said == said


def test_first_thing_gets_the_opening_hours_of_that_day():
    n = note_for("Are you guys open first thing tomorrow?", datetime(2026, 12, 4, 18, 0))
    assert ("Yes: first thing in the morning tomorrow (Saturday, December 5) Mill Bakery is "
            "open; that day's hours: 7 am to 3 pm.") in n


@pytest.mark.parametrize("text", [
    "How late do you stay open on Saturday?", "What time do you finish up on a Friday?",
    "When do you guys shut on Sunday?", "What time do you wrap up Saturday?"])
def test_asking_how_late_is_asking_for_the_hours(text):
    n = note_for(text)
    assert "Mill Bakery is open from 7 am to 3 pm" in n, n


@pytest.mark.parametrize("text, yes_no", [
    ("You guys open on New Year's Eve?", True), ("Open Sundays?", True),
    ("Hey, anyone there at 8?", True), ("You do gluten-free?", True),
    ("You guys know what time you close?", False), ("You close at 3.", False),
    ("So what time do you open?", False)])
def test_a_question_without_its_auxiliary_is_still_yes_or_no(text, yes_no):
    assert mentions.is_yes_no(text) is yes_no


def test_a_casual_yes_no_question_about_a_closed_day_begins_with_no():
    assert note_for("You guys open on Christmas Day?").endswith('Begin your answer with "No,".')


@pytest.mark.parametrize("first, then", [
    ("Hey, are you guys open this Saturday?", "Cool, and how late?"),
    ("Hi there, what time do you open on Sunday?",
     "Okay great, and, uh, how late do you stay open that day?"),
    ("Can I come in on Sunday?", "What time do you close then?"),
])
def test_a_follow_up_about_the_hours_keeps_the_day_asked_about(first, then):
    facts = CallFacts(BAKERY)
    wall = datetime(2026, 12, 2, 10, 0, tzinfo=facts._zone).timestamp()  # a Wednesday
    facts.note(first, wall)
    n = facts.note(then, wall)
    assert "Sunday, December 6" in n or "Saturday, December 5" in n, n
    assert "today" not in n.split("\n", 1)[1], n


def test_a_new_question_about_the_hours_is_about_today():
    facts = CallFacts(BAKERY)
    wall = datetime(2026, 12, 2, 10, 0, tzinfo=facts._zone).timestamp()
    facts.note("Are you open this Saturday?", wall)
    n = facts.note("What time do you close today?", wall)
    assert "Saturday" not in n, n


def test_a_name_ending_in_a_short_word_needs_both_words():
    clinic = (parse_items(("check-up: 55",), "amount")[0],)
    for text in ("How much is a check-up?", "what's a check up", "two checkups"):
        assert mentions.find_items(text, clinic), text
    for text in ("What time do you finish up on a Friday?", "can you check my car"):
        assert not mentions.find_items(text, clinic), text


@pytest.mark.parametrize("text, yes_no", [
    ("I'm leaving the office in a bit, if I come over in an hour or so will you still be "
     "open?", True),
    ("If I drop it off at 8 is someone there?", True),
    ("So what time will you open tomorrow?", False),
    ("How much would it be?", False)])
def test_a_yes_no_question_after_a_clause_of_its_own(text, yes_no):
    assert mentions.is_yes_no(text) is yes_no


def test_asking_for_one_day_s_hours_gets_them_as_the_answer_s_words():
    n = note_for("How late do you stay open on Sunday?")
    assert n.endswith('Begin your answer with "On Sunday December 6, Mill Bakery is open from '
                      '7 am to 3 pm."'), n
    assert note_for("What time do you open on Tuesday?").endswith(
        'Begin your answer with "On Tuesday December 8, Mill Bakery is closed."')
    # a yes/no question keeps its "Yes,"/"No,"; a time asked about keeps its verdict
    assert note_for("Are you open on Sunday?").endswith('"Yes,".')
    assert "Begin your answer with \"On" not in note_for("Can I come on Sunday at 2 pm?")


def test_a_two_part_question_is_not_cut_to_one_day_s_hours():
    n = note_for("Where are you, and what time do you open on Sunday?")
    assert "Begin your answer with" not in n


@pytest.mark.parametrize("text, now, said", [
    # open now, or still to open today: today's hours
    ("What time do you open in the morning?", datetime(2026, 12, 6, 6, 30), "Today"),
    ("When do you close in the afternoon?", datetime(2026, 12, 6, 9, 0), "Today"),
    # closed for the day (Friday 16:05), or closed all day (Tuesday): the next day it opens,
    # by its weekday
    ("what time do you guys open up?", FRI_1605, "On Saturday December 5"),
    ("How late are you open?", datetime(2026, 12, 8, 10, 0), "On Wednesday December 9")])
def test_asking_when_with_no_day_named_gets_the_day_in_question_s_hours(text, now, said):
    assert opening(note_for(text, now)) == f"{said}, Mill Bakery is open from 7 am to 3 pm."


@pytest.mark.parametrize("text", [
    "What are your hours?",  # the hours in general: the model's answer
    "What time do you open on weekdays?",
    "Are you open in the morning?",  # yes/no: "Yes,"
    "When do you open in the morning, and how much is a croissant?"])
def test_no_day_s_hours_for_other_questions_about_the_hours(text):
    assert not opening(note_for(text)).endswith("is open from 7 am to 3 pm.")


def test_a_person_s_name_is_not_the_business_s():
    def topics(text: str) -> frozenset[str]:
        return mentions.find(text, FRI_1605.date(), BAKERY.catalog(), {}, 600).topics

    for text in ("What is the name of your dentist?", "What's the owner's name?",
                 "Can you give me the name of the vet on duty?"):
        assert "name" not in topics(text), text
    for text in ("What's the name of your garage?", "Sorry, what's the name of this place?"):
        assert "name" in topics(text), text


def test_a_price_s_article_goes_by_the_sound_of_the_name():
    b = Business(name="Garage", hours=parse_hours(("mon-fri 08:00-17:00",)),
                 prices=parse_items(("x-ray: 25", "MOT: 55", "oil change: 49", "tire: 80"),
                                    "amount"))
    said = [note_for(f"How much is {q}?", b=b) for q in ("an x-ray", "an MOT", "an oil change",
                                                           "a tire")]
    for n, words in zip(said, ("An x-ray costs", "An MOT costs", "An oil change costs",
                               "A tire costs"), strict=True):
        assert f'"{words}' in n, n
