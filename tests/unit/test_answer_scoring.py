"""The answer-accuracy benchmark's data and scorer (testbed/answer_cases.py): pure, no models."""

from __future__ import annotations

import collections
import datetime as dt
import re
import zoneinfo

import pytest

from testbed.answer_cases import (
    BUSINESS_KEYS,
    CASES,
    CATEGORIES,
    FALLBACK_MUST,
    PERSONAS,
    STYLES,
    hours_on,
    is_open,
    normalise,
    score,
)

BY_ID = {c.id: c for c in CASES}


# ---- structure --------------------------------------------------------------------------------

def test_ids_unique_and_well_formed():
    assert len(BY_ID) == len(CASES)
    for c in CASES:
        assert re.fullmatch(rf"{c.persona}-\d\d", c.id), c.id
        assert c.persona in PERSONAS
        assert c.turns and all(t.strip() for t in c.turns), c.id
        assert c.must, c.id
        assert c.note and "\n" not in c.note, c.id


def test_categories_known():
    assert {c.category for c in CASES} <= set(CATEGORIES)


def test_three_personas_of_different_businesses_and_timezones():
    assert len(PERSONAS) >= 3
    assert len({p.business["name"] for p in PERSONAS.values()}) == len(PERSONAS)
    assert len({p.business["timezone"] for p in PERSONAS.values()}) == len(PERSONAS)
    for key, persona in PERSONAS.items():
        assert persona.key == key


@pytest.mark.parametrize("persona", ("bakery", "dental", "garage"))
def test_coverage_per_persona(persona):
    cases = [c for c in CASES if c.persona == persona and not c.style]  # worded like the facts
    assert len(cases) >= 24
    per_cat = collections.Counter(c.category for c in cases)
    for cat in CATEGORIES:
        if cat != "partial":  # two questions in one are the natural set's
            assert per_cat[cat] >= 3, (persona, cat, per_cat[cat])
    held = [c for c in cases if c.held_out]
    assert 0.2 <= len(held) / len(cases) <= 0.35, len(held)
    assert len({c.category for c in held}) >= 4


def test_the_natural_phrasing_set_is_held_out_over_three_personas():
    natural = [c for c in CASES if c.style]
    held = [c for c in natural if c.held_out]
    assert len(held) >= 40
    assert {c.persona for c in held} == {"bakery", "dental", "garage"}
    assert {c.style for c in held} == set(STYLES)
    assert {"unknown", "partial", "prices", "times"} <= {c.category for c in held}
    # the developers' own natural questions, to tune on, are about another business; a
    # held-out case whose failure shaped the rules says so in its note
    assert {c.persona for c in natural
            if not c.held_out and not c.note.startswith("(moved to tuning")} == {"vet"}
    for c in natural:
        if c.category == "partial":
            assert set(FALLBACK_MUST) <= set(c.must), c.id


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_business_table_schema(persona):
    b = PERSONAS[persona].business
    assert set(b) == set(BUSINESS_KEYS)
    zoneinfo.ZoneInfo(b["timezone"])
    for key in ("name", "timezone", "address", "phone", "currency", "fallback"):
        assert isinstance(b[key], str) and b[key], key
    for key in ("hours", "closed_dates", "prices", "lead_times", "facts"):
        assert isinstance(b[key], list) and all(isinstance(x, str) for x in b[key]), key
    days = r"(?:mon|tue|wed|thu|fri|sat|sun)"
    span = r"\d\d:\d\d-\d\d:\d\d"
    for h in b["hours"]:
        assert re.fullmatch(rf"{days}(?:-{days})?(?:,{days}(?:-{days})?)*(?: {span})+", h), h
    for d in b["closed_dates"]:
        dt.date.fromisoformat(d.split()[0])
    items = set()
    for p in b["prices"]:
        m = re.fullmatch(r"([a-z][a-z -]*): (\d+(?:\.\d\d)?)", p)
        assert m, p
        items.add(m.group(1))
    for lt in b["lead_times"]:
        m = re.fullmatch(r"([a-z][a-z -]*): (\d+)", lt)
        assert m and m.group(1) in items, lt  # every lead time is for a priced item


def test_clocks_parse():
    for c in CASES:
        when = dt.datetime.fromisoformat(c.clock)
        assert when.tzinfo is None, c.id  # local wall time
        assert when.year == 2026 and when.month == 12, c.id


def test_regexes_compile():
    for c in CASES:
        for p in (*c.must, *c.must_not):
            re.compile(p)


def test_unknown_cases_require_the_fallback():
    for c in CASES:
        if c.category == "unknown":
            assert set(FALLBACK_MUST) <= set(c.must), c.id


# ---- the facts the cases were written from ----------------------------------------------------

def _t(s: str) -> dt.time:
    return dt.time.fromisoformat(s)


def test_ground_truth_calendar():
    assert dt.date(2026, 12, 4).strftime("%A") == "Friday"
    bakery = PERSONAS["bakery"].business
    dental = PERSONAS["dental"].business
    garage = PERSONAS["garage"].business
    assert hours_on(bakery, dt.date(2026, 12, 7)) == []  # Monday
    assert hours_on(bakery, dt.date(2026, 12, 8)) == []  # Tuesday
    assert hours_on(bakery, dt.date(2026, 12, 24)) == [(_t("07:00"), _t("15:00"))]
    assert hours_on(bakery, dt.date(2026, 12, 25)) == []
    assert hours_on(bakery, dt.date(2026, 12, 26)) == []  # a Saturday, closed date
    assert hours_on(bakery, dt.date(2026, 12, 5)) == [(_t("08:00"), _t("13:00"))]
    assert not is_open(bakery, dt.datetime(2026, 12, 4, 16, 5))
    assert is_open(bakery, dt.datetime(2026, 12, 5, 12, 40))
    assert hours_on(dental, dt.date(2026, 12, 8)) == [(_t("08:30"), _t("12:30")),
                                                      (_t("13:30"), _t("17:30"))]
    assert not is_open(dental, dt.datetime(2026, 12, 8, 12, 50))
    assert hours_on(dental, dt.date(2026, 12, 9)) == [(_t("10:00"), _t("19:00"))]
    assert hours_on(dental, dt.date(2026, 12, 24)) == []
    assert hours_on(dental, dt.date(2026, 12, 28)) == []
    assert hours_on(dental, dt.date(2026, 12, 29)) != []
    assert not is_open(dental, dt.datetime(2026, 12, 4, 14, 0))
    assert hours_on(garage, dt.date(2026, 12, 31)) == []
    assert hours_on(garage, dt.date(2027, 1, 2)) == [(_t("08:00"), _t("12:00"))]
    assert not is_open(garage, dt.datetime(2026, 12, 7, 17, 45))
    assert not is_open(garage, dt.datetime(2026, 12, 12, 7, 45))
    assert hours_on(garage, dt.date(2026, 12, 13)) == []


# ---- normalise ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("Three P.M.", "3 pm"),
    ("We close at 3 p. m. today", "we close at 3 pm today"),
    ("open at 7 a.m.", "open at 7 am"),
    ("Twenty five dollars", "25 dollars"),
    ("twenty-five", "25"),
    ("That's $6.", "that's 6 dollars."),
    ("$14.50 in total", "14.50 dollars in total"),
    ("$2.5", "2.50 dollars"),
    ("£55", "55 pounds"),
    ("fourteen dollars and fifty cents", "14.50 dollars"),
    ("two pounds fifty.", "2.50 pounds."),
    ("two hundred and ninety-nine pounds", "299 pounds"),
    ("one hundred twenty", "120"),
    ("We\u2019re open at seven o'clock.", "we're open at 7."),
    ("noon", "12 pm"),
    ("until 12 noon", "until 12 pm"),
    ("until midday", "until 12 pm"),
    ("15:00", "3 pm"),
    ("from 08:30 to 17:30", "from 8:30 am to 5:30 pm"),
    ("3:00 PM", "3 pm"),
    ("two forty-five p.m.", "2:45 pm"),
    ("3.30pm", "3:30 pm"),
    ("8am", "8 am"),
    ("half past eight", "8:30"),
    ("a quarter to one", "a 12:45"),
    ("three in the afternoon", "3 pm"),
    ("seven in the morning", "7 am"),
    ("December twenty-fourth", "december 24th"),
    ("five five five, oh one four two", "5 5 5, 0 1 4 2"),
    ("\u201cYes,  we  are.\u201d", "yes, we are."),
])
def test_normalise(raw, expected):
    assert normalise(raw) == expected


# ---- hand-written answers: a correct one passes, a wrong one fails --------------------------

# (case id, correct answers, wrong answers)
PAIRS: list[tuple[str, list[str], list[str]]] = [
    # bakery
    ("bakery-01", ["No, sorry, we're closed on Mondays. We're open Wednesday to Sunday.",
                   "We aren't open on Mondays."],
     ["Yes, we're open on Monday from 7 am to 3 pm.", "On Mondays we open at 7 am.",
      "We're open on Mondays, closed on Tuesdays."]),
    ("bakery-02", ["We're closed on Mondays and Tuesdays.",
                   "Mondays and Tuesdays. We're open Wednesday through Sunday.",
                   "We're closed Monday and Tuesday, and also on Christmas Day."],
     ["We're closed on Sundays and Mondays.", "We're closed Monday, Tuesday and Wednesday.",
      "We're closed on weekends."]),
    ("bakery-03", ["Yes, on Sundays we're open from 8 am to 1 pm.",
                   "Sunday 8 to 1.", "Yes, we are open Sundays until one in the afternoon.",
                   "We are, from 8 to 1."],
     ["No, we're closed on Sundays.", "Sunday from 7 am to 3 pm.",
      "Yes, Sunday from 8 am to 3 pm."]),
    ("bakery-04", ["No, we're closed on Tuesdays."],
     ["Yes, we open at 7 on Tuesdays.", "Sure, we're open Tuesday."]),
    ("bakery-05", ["Sorry, on Fridays we close at 3 pm, so 4 would be too late.",
                   "We close at three on Fridays.", "No, we're closed by then."],
     ["Yes, see you then!", "Sure, we're open until 5 on Friday.",
      "Of course, we close at 6."]),
    ("bakery-06", ["Yes, we're open until 3 pm on Thursday.",
                   "Sure, that works. We close at three.",
                   "Yes, you can come by then."],
     ["Sorry, we're closed on Thursdays.", "No, we close at 2:30 on Thursdays.",
      "That's too late, we close at 2 pm."]),
    ("bakery-07", ["No, on Saturdays we close at 1 pm.",
                   "Sorry, Saturday we're only open until one.",
                   "We close at 1 pm on Saturdays, so that's too late."],
     ["Yes, we're open until 3 on Saturday.", "Sure, see you at 1:30!",
      "Saturday from 8 to 3, so that works."]),
    ("bakery-08", ["We open at 8 am on Saturdays.", "Saturday we open at eight o'clock."],
     ["We open at 7 am.", "Saturdays at 7.", "We open at 8:30 on Saturday."]),
    ("bakery-09", ["We're open until 3 pm on Wednesdays.", "We close at three."],
     ["We close at 5 pm.", "Until 3:30 on Wednesdays."]),
    ("bakery-10", ["No, we closed at 3 pm today. We open again tomorrow at 8 am.",
                   "Sorry, we're closed right now."],
     ["Yes, we're open right now.", "We're still open until 5 today."]),
    ("bakery-11", ["No, tomorrow is Monday and we're closed on Mondays.",
                   "Sorry, we're closed tomorrow. We're open again Wednesday at 7 am."],
     ["Yes, we're open tomorrow from 7 to 3.", "Tomorrow we're open from 8 am."]),
    ("bakery-12", ["No, we're closed on Tuesdays. We open tomorrow at 7 am.",
                   "Sorry, we're not open today."],
     ["Yes, we're open today until 3 pm.", "We're open now until 3."]),
    ("bakery-13", ["No, we're closed on Friday for Christmas Day.",
                   "Friday is Christmas Day, so we'll be closed."],
     ["Yes, we're open Friday from 7 am to 3 pm.", "Friday, we're open as usual."]),
    ("bakery-14", ["No, we're closed on December 26th.",
                   "Sorry, we're closed on the 26th. We reopen on Sunday the 27th."],
     ["Yes, it's a Saturday, we're open from 8 to 1.",
      "We're open on the 26th from 8 am to 1 pm."]),
    ("bakery-15", ["Yes, we're open on Christmas Eve from 7 am to 3 pm.",
                   "Christmas Eve is a Thursday, 7 to 3. We're closed on Christmas Day."],
     ["No, we're closed on Christmas Eve.", "We're closed on Thursday the 24th."]),
    ("bakery-16", ["Yes, we're open until 1 pm today.", "We're still open, until one o'clock."],
     ["No, we're already closed.", "Yes, we're open until 3 pm."]),
    ("bakery-17", ["We close at 3 pm today.", "We're open until three this afternoon."],
     ["We close at 1 pm today.", "Today we're open until 5."]),
    ("bakery-18", ["A sourdough loaf is 6 dollars.", "It's $6.", "Six dollars."],
     ["A sourdough loaf is 5 dollars.", "That's $6.50.", "It's 16 dollars."]),
    ("bakery-19", ["That comes to 14.50 dollars.",
                   "Two loaves are 12 dollars and a croissant is 2.50, so $14.50 in total.",
                   "Fourteen dollars and fifty cents.", "That's fourteen fifty."],
     ["That's 8.50 dollars.", "That comes to 14 dollars.", "That's $15.",
      "That would be 17 dollars."]),
    ("bakery-20", ["A birthday cake is 35 dollars.", "Thirty-five dollars."],
     ["A birthday cake is 45 dollars.", "They start at 30 dollars."]),
    ("bakery-21", ["Three cinnamon rolls are 9.75 and the loaf is 6, so 15.75 dollars.",
                   "That's $15.75."],
     ["That's 9.25 dollars.", "That'll be 15.25 dollars.", "About 16 dollars."]),
    ("bakery-22", ["Sorry, birthday cakes need 2 days' notice, so the earliest is Friday.",
                   "No, we need at least two days for a birthday cake.",
                   "Birthday cakes have to be ordered two days in advance, so tomorrow won't "
                   "work."],
     ["Yes, no problem!", "Sure, we can do that for tomorrow.",
      "Birthday cakes need 2 days' notice, so tomorrow works."]),
    ("bakery-23", ["Yes, Saturday works. Birthday cakes need two days' notice.",
                   "Yes, you can order it for Saturday."],
     ["No, that's too soon.", "Sorry, we can't do Saturday."]),
    ("bakery-24", ["You need to order a birthday cake 2 days in advance.",
                   "At least two days ahead.", "48 hours ahead."],
     ["One day in advance.", "About a week ahead.", "3 days in advance."]),
    ("bakery-25", ["Yes, a party platter needs one day's notice, so tomorrow works.",
                   "Sure, you can get it for tomorrow."],
     ["No, party platters need 2 days.", "Sorry, that's too soon."]),
    ("bakery-26", ["Sorry, party platters need one day's notice, so not today.",
                   "No, the earliest would be tomorrow."],
     ["Yes, we can do that today.", "Sure, it'll be ready by 2 pm."]),
    ("bakery-27", ["I don't know that, but I can take a message.",
                   "I'm not sure about parking, but I can take a message for you.",
                   "Sorry, that's not something I have information on. Would you like to "
                   "leave a message?"],
     ["Yes, there's free parking behind the shop.", "No, there's no parking.",
      "I'm not sure, but there is street parking.", "I don't know."]),
    ("bakery-28", ["I'm not sure whether we have gluten-free bread, but I can take a message.",
                   "I don't know that, but I can take a message."],
     ["No, we don't have gluten-free bread.", "Yes, we bake gluten-free loaves.",
      "We do have gluten-free bread, I can take a message if you want to order."]),
    ("bakery-29", ["I don't know that, but I can take a message."],
     ["Yes, coffee is 3 dollars.", "We don't serve coffee, sorry.",
      "I'm not sure. Coffee is $2.50. I can take a message."]),
    ("bakery-30", ["I don't know the owner's name, but I can take a message for them."],
     ["The owner's name is Maria.", "I'm not sure, but it's owned by Tom Riley. "
      "I can take a message."]),
    ("bakery-31", ["No, we're closed on Mondays.", "Sorry, Mondays we're closed."],
     ["Yes, Monday from 7 to 3.", "We're open on Monday until 3 pm."]),
    ("bakery-32", ["Four croissants are 10 dollars.", "That would be $10."],
     ["That's 12 dollars.", "Four croissants are 8 dollars."]),
    ("bakery-33", ["On Saturday we close at 1 pm.", "Saturdays we're open until one."],
     ["On Saturday we close at 3 pm.", "Saturday 8 to 3."]),
    ("bakery-34", ["We're at 48 Mill Road, Springfield.", "Forty-eight Mill Road."],
     ["We're at 84 Mill Road.", "Our address is 48 Mill Street."]),
    ("bakery-35", ["Our number is 555 0142.", "It's five five five, oh one four two.",
                   "You can call us on 555-0142."],
     ["Our number is 555 0124.", "It's 555 1042."]),
    ("bakery-36", ["This is Riverside Bakery."], ["This is Springfield Bakery."]),
    ("bakery-37", ["You've reached Riverside Bakery."], ["This is Mill Road Bakery."]),
    ("bakery-38", ["That comes to 40 dollars.", "Forty dollars in total."],
     ["That would be 37.50 dollars.", "It's 42.50 dollars."]),
    ("bakery-39", ["We're open Wednesday to Sunday.", "Any day from Wednesday through Sunday."],
     ["We're open Monday to Friday.", "You can come in Wednesday to Sunday, and we're open "
      "on Mondays too.", "You can come in on Monday, Tuesday, Wednesday, Thursday, Friday, "
      "Saturday, and Sunday.", "You can come in Monday and Tuesday, or on Wednesday through "
      "Friday."]),
    # dental
    ("dental-01", ["No, we're closed at weekends, so we're not open on Saturdays."],
     ["Yes, we're open on Saturday mornings.", "Saturday from 9 to 12."]),
    ("dental-02", ["We're open Monday to Friday.", "We're open on weekdays.",
                   "Monday through Friday; we're not open on Saturday or Sunday."],
     ["We're open Monday to Saturday.", "Every day.", "We're open on weekends too.",
      "We're open Monday, Tuesday and Wednesday."]),
    ("dental-03", ["Yes, on Wednesdays we're open from 10 am to 7 pm.", "Wednesdays 10 to 7."],
     ["No, we're closed on Wednesdays.", "Sorry, Wednesday is our day off."]),
    ("dental-04", ["Yes, we're closed on Sundays.", "That's right, we are closed on Sundays."],
     ["No, we're open on Sundays.", "We're open Sunday from 10 to 2."]),
    ("dental-05", ["Sorry, we're closed for lunch from 12:30 to 1:30 on Tuesdays.",
                   "No, that's during our lunch break. We reopen at half past one."],
     ["Yes, that works.", "Sure, see you then."]),
    ("dental-06", ["Yes, we're open until 5:30 on Thursdays.",
                   "Yes, Thursday afternoon we're open from 1:30 to 5:30 pm."],
     ["No, we close at 5 on Thursdays.", "Sorry, we're closed on Thursday.",
      "Yes, we're open until 5."]),
    ("dental-07", ["On Monday we're open from 8:30 to 12:30 and from 1:30 to 5:30.",
                   "Mondays: half past eight to half past twelve, then half past one "
                   "to half past five."],
     ["On Monday we're open from 8:30 am to 5:30 pm.", "Monday 9 to 5.",
      "Monday 8:30 to 12:30 and 1 to 5."]),
    ("dental-08", ["Sorry, on Fridays we close at 1 pm.", "We close at one on Fridays."],
     ["Yes, we're open until 5:30 on Friday.", "Sure, Friday from 8:30 to 5:30."]),
    ("dental-09", ["We close at 7 pm on Wednesdays.", "Wednesdays until seven in the evening."],
     ["We close at 5:30 on Wednesdays.", "Wednesday until 6 pm."]),
    ("dental-10", ["No, on Wednesdays we open at 10 am.", "We don't open until 10 on Wednesdays."],
     ["Yes, we open at 8:30.", "Sure, we open at 9 on Wednesdays.",
      "We open at 8:30 on Wednesdays."]),
    ("dental-11", ["No, we're closed for lunch right now. We're back at 1:30.",
                   "We're on our lunch break until 1:30 pm."],
     ["Yes, we're open right now.", "Yes, we're open until 5:30 today."]),
    ("dental-12", ["No, Thursday is Christmas Eve and we're closed.",
                   "Sorry, we're closed on Christmas Eve."],
     ["Yes, we're open Thursday from 8:30.", "Thursday, we're open until 12:30."]),
    ("dental-13", ["No, we're closed on the 28th for the Boxing Day bank holiday."],
     ["Yes, we're open Monday the 28th.", "Monday, 8:30 to 12:30 and 1:30 to 5:30."]),
    ("dental-14", ["Yes, on Tuesday the 29th we're open 8:30 to 12:30 and 1:30 to 5:30.",
                   "Yes, we're open that day."],
     ["No, we're closed on the 29th.", "Sorry, we're closed until the new year."]),
    ("dental-15", ["No, we closed at 1 pm today.", "Sorry, on Fridays we're closed after one."],
     ["Yes, we're still open.", "Yes, we're open until 5:30 today."]),
    ("dental-16", ["Tomorrow is Wednesday, so we open at 10 am.", "At ten o'clock."],
     ["We open at 8:30 tomorrow.", "Tomorrow at 9."]),
    ("dental-17", ["No, we're closed on Saturdays.", "Sorry, we're not open today."],
     ["Yes, we're open today.", "We're open until 1 pm today."]),
    ("dental-18", ["A check-up is 55 pounds.", "It's £55.", "Fifty-five pounds."],
     ["A check-up is 55 dollars.", "It's £60.", "$55."]),
    ("dental-19", ["That would be 80 pounds.",
                   "A check-up is 55 and an x-ray is 25, so £80 altogether."],
     ["That's 75 pounds.", "That would be 80 dollars.", "That's 90 pounds."]),
    ("dental-20", ["Teeth whitening costs 299 pounds.",
                   "Two hundred and ninety-nine pounds."],
     ["Teeth whitening is 250 pounds.", "About 300 pounds.", "It's $299."]),
    ("dental-21", ["Two fillings are 240 pounds and a check-up 55, so 295 pounds in total.",
                   "That comes to £295."],
     ["That's 175 pounds.", "About 300 pounds.", "That's 295 dollars."]),
    ("dental-22", ["Sorry, teeth whitening needs 7 days' notice, so this Friday is too soon.",
                   "No, we need a week's notice for whitening."],
     ["Yes, no problem.", "Sure, we can do that."]),
    ("dental-23", ["Yes, Thursday is fine for a cleaning.",
                   "Yes, you can book a cleaning for Thursday."],
     ["No, cleanings need a week's notice.", "Sorry, that's too soon."]),
    ("dental-24", ["We need 7 days' notice for teeth whitening.", "One week."],
     ["Two days' notice.", "About two weeks.", "48 hours."]),
    ("dental-25", ["Sorry, cleanings need two days' notice, so the earliest is Wednesday.",
                   "No, a cleaning needs at least 2 days' notice."],
     ["Yes, we can do that tomorrow.", "Sure, how about 10 am tomorrow?"]),
    ("dental-26", ["I'm not sure about that, but I can take a message for the practice."],
     ["Yes, there's a car park behind the practice.", "There is street parking nearby.",
      "I'm not sure about that."]),
    ("dental-27", ["I'm not sure about that, but I can take a message for the practice."],
     ["Yes, our emergency line is 020 7946 0999.", "No, we don't have an emergency line.",
      "We have an out-of-hours service. I can take a message."]),
    ("dental-28", ["I'm not sure about that, but I can take a message for the practice."],
     ["Yes, we do braces.", "No, we don't offer braces.",
      "I'm not sure, braces cost 2000 pounds, I can take a message."]),
    ("dental-29", ["I don't know the dentist's name, but I can take a message."],
     ["The dentist is Dr Patel.", "I'm not sure, but it's Doctor Smith. I can take a message."]),
    ("dental-30", ["On Wednesdays we open at 10 am.", "At ten."],
     ["We open at 8:30 on Wednesdays too.", "Wednesdays at 9."]),
    ("dental-31", ["Three x-rays would be 75 pounds.", "That's £75."],
     ["That's 50 pounds.", "Three would be 75 dollars."]),
    ("dental-32", ["Yes, on Thursday we're open from 1:30 to 5:30 pm.",
                   "Thursday afternoon we're open 1:30 to 5:30."],
     ["No, we're closed on Thursday afternoons too.", "Sorry, Thursday we're closed."]),
    ("dental-33", ["We're at 215 High Street, Kingston.",
                   "Two hundred and fifteen High Street."],
     ["We're at 251 High Street.", "Our address is 215 Harley Street."]),
    ("dental-34", ["Our number is 020 7946 0321.", "It's oh two oh, seven nine four six, "
                   "oh three two one.", "+44 20 7946 0321"],
     ["Our number is 020 7946 0312.", "It's 7946 0321."]),
    ("dental-35", ["You've reached Bright Smile Dental."], ["You've reached Kingston Dental."]),
    ("dental-36", ["You're speaking with Bright Smile Dental."], ["This is Kingston Dental."]),
    ("dental-37", ["A cleaning and two x-rays come to 125 pounds."],
     ["That's 100 pounds.", "It comes to 125 dollars."]),
    ("dental-38", ["No, we're closed at the weekend.", "We're closed on Saturdays and Sundays."],
     ["Yes, we're open on Saturday mornings.", "We're open Monday through Saturday."]),
    # garage
    ("garage-01", ["No, we're closed on Sundays."],
     ["Yes, we're open on Sundays from 8 to 12.", "Sunday 9 am to 1 pm."]),
    ("garage-02", ["Yes, Saturdays from 8 am to noon.", "Yes, we're open Saturday mornings.",
                   "Saturday 8 to 12."],
     ["No, we're closed on Saturdays.", "Yes, Saturday 8 to 5:30.",
      "Saturday from 7:30 to 5:30."]),
    ("garage-03", ["We're open Monday to Friday, and Saturday mornings.",
                   "Monday through Saturday; we're closed on Sundays."],
     ["We're open Monday to Friday.", "We're open every day.",
      "Monday through Sunday.", "Monday to Saturday, and Sunday 9 to 12."]),
    ("garage-04", ["Yes, we're open Wednesdays from 7:30 am to 5:30 pm.",
                   "Wednesday 7:30 to 5:30."],
     ["No, we're closed on Wednesdays.", "Sorry, Wednesday is our day off."]),
    ("garage-05", ["Sorry, we don't open until 7:30.", "We open at 7:30 am on Mondays.",
                   "That's a bit early, we open at half past seven."],
     ["Yes, we open at 7 am.", "Sure, see you then.", "We open at 7 on Mondays."]),
    ("garage-06", ["Yes, we're open until 5:30 on Fridays.", "Sure, that works."],
     ["No, we close at 5 on Fridays.", "Sorry, we're closed by then.",
      "Yes, we're open till 5."]),
    ("garage-07", ["Sorry, on Saturdays we close at noon.",
                   "No, Saturday we're only open until 12."],
     ["Yes, see you at 12:30.", "Sure, Saturday 8 to 5."]),
    ("garage-08", ["We close at noon on Saturdays.", "Saturdays we're open until 12 pm.",
                   "At twelve."],
     ["We close at 5:30 on Saturdays.", "Saturday until 1 pm.", "We close at 12:30."]),
    ("garage-09", ["We open at 7:30 am on weekdays.", "Half past seven."],
     ["We open at 8 am.", "We open at 7 am on weekdays."]),
    ("garage-10", ["No, we closed at 5:30 pm.", "Sorry, we're closed for the day."],
     ["Yes, we're still open.", "We're open till 6 tonight."]),
    ("garage-11", ["No, tomorrow is Christmas Eve and we're closed.",
                   "Sorry, we're closed tomorrow."],
     ["Yes, we're open tomorrow from 7:30 to 5:30.", "Tomorrow, we're open until noon."]),
    ("garage-12", ["No, we're closed tomorrow, December 31st.",
                   "Sorry, we'll be closed tomorrow."],
     ["Yes, we're open tomorrow.", "Thursday, we're open from 7:30 to 5:30."]),
    ("garage-13", ["Yes, we're open this Saturday from 8 am to noon.", "Saturday 8 to 12."],
     ["No, we're closed this Saturday for New Year's.", "Sorry, we're closed on Saturday."]),
    ("garage-14", ["Not yet, we open at 8 am.", "We're not open yet, we open in 15 minutes.",
                   "Sorry, we open at eight on Saturdays."],
     ["Yes, we're open right now.", "Yes, come on in!"]),
    ("garage-15", ["No, we're closed on Sundays.", "Sorry, we're not open today."],
     ["Yes, we're open today.", "We're open now until noon."]),
    ("garage-16", ["We're open until 5:30 pm today.", "We close at half past five."],
     ["We close at 5 pm today.", "Until 6 tonight.", "We close at noon today."]),
    ("garage-17", ["An oil change is 49 dollars.", "Forty-nine dollars.", "It's $49."],
     ["An oil change is 39 dollars.", "It's $49.99."]),
    ("garage-18", ["That comes to 74 dollars.",
                   "An oil change is 49 and a tire rotation is 25, so $74 total."],
     ["That's 64 dollars.", "That'll be $75.", "That's 79 dollars."]),
    ("garage-19", ["A wheel alignment is 89.99 dollars.", "It's $89.99.",
                   "Eighty-nine dollars and ninety-nine cents.", "eighty-nine ninety-nine"],
     ["A wheel alignment is 90 dollars.", "It's $89.", "About 99 dollars."]),
    ("garage-20", ["Two oil changes are 98 dollars plus 30 for the brake inspection, so 128 "
                   "dollars.", "That's $128."],
     ["That's 79 dollars.", "That comes to 118 dollars."]),
    ("garage-21", ["Sorry, wheel alignments need a day's notice, so tomorrow is the earliest.",
                   "No, we need one day's notice for an alignment."],
     ["Yes, no problem, bring it in.", "Sure, we can do that today."]),
    ("garage-22", ["Yes, Friday works, timing belts need three days' notice.",
                   "Yes, you can book it for Friday."],
     ["No, that's not enough notice.", "Sorry, we can't do Friday."]),
    ("garage-23", ["Sorry, timing belt replacements need 3 days' notice, so the earliest is "
                   "Thursday.", "No, that's too soon, we need three days."],
     ["Yes, no problem.", "Sure, we can do it Wednesday."]),
    ("garage-24", ["Three days ahead.", "You need to book it 3 days in advance."],
     ["One day ahead.", "A week ahead.", "48 hours."]),
    ("garage-25", ["I don't have that information, but I can take a message and someone "
                   "will call you back."],
     ["Yes, we offer free loaner cars.", "No, we don't have loaner cars.",
      "There are no loaner cars, but I can take a message."]),
    ("garage-26", ["I don't have that information, but I can take a message."],
     ["Yes, we accept all major credit cards.", "We're cash only.",
      "I'm not sure, but we do take Visa. I can take a message."]),
    ("garage-27", ["I'm not sure about that, but I can take a message."],
     ["Yes, we have a tow truck.", "No, we don't offer towing.",
      "I don't know, but towing costs 80 dollars. I can take a message."]),
    ("garage-28", ["I don't have that information, but someone can call you back if I take "
                   "a message."],
     ["We use Mobil 1 synthetic oil.", "I'm not sure, probably Castrol. I can take a message."]),
    ("garage-29", ["No, we're closed on Sundays.", "Sorry, Sunday we're closed."],
     ["Yes, Sunday from 8 to 12.", "We're open on Sunday mornings."]),
    ("garage-30", ["A brake inspection is 30 dollars.",
                   "That's $30, so 55 dollars for both."],
     ["A brake inspection is 35 dollars.", "That's 40 dollars."]),
    ("garage-31", ["Tomorrow is Saturday, so we open at 8 am.", "At eight."],
     ["We open at 7:30 tomorrow.", "Tomorrow at 9 am."]),
    ("garage-32", ["We're at 350 Harbor Boulevard, Fresno.", "Three fifty Harbor Boulevard."],
     ["We're at 530 Harbor Boulevard.", "350 Harbor Street."]),
    ("garage-33", ["Our number is 555 0198.", "It's five five five, zero one nine eight."],
     ["Our number is 555 0189.", "It's 555 0142."]),
    ("garage-34", ["This is Oakwood Auto Repair."], ["This is Oakwood Tire Center."]),
    ("garage-36", ["This is Oakwood Auto Repair."], ["This is Harbor Garage."]),
    ("garage-37", ["That would be 114.99 dollars.", "114 dollars 99 in total."],
     ["That's 115 dollars.", "It comes to 104.99 dollars."]),
    ("garage-38", ["We're open on Saturdays from 8 to 12, but closed on Sundays."],
     ["No, we're closed at weekends.", "We're open on Sundays from 9 to 1."]),
    ("bakery-40", ["No, we're closed on Mondays and Tuesdays.",
                   "We're open Wednesday to Sunday, closed Monday and Tuesday."],
     ["Yes, we're open every day.", "Yes, seven days a week.",
      "We're open on Mondays and every other day."]),
    ("bakery-41", ["We're open on Thursdays from 7 to 3, but closed on Tuesdays.",
                   "Thursdays yes, 7 am to 3 pm; we're closed on Tuesday."],
     ["Yes, we're open on Tuesdays and Thursdays.", "We're open on Thursdays.",
      "We're closed on Tuesdays and Thursdays."]),
    ("dental-39", ["No, we're closed on Saturdays.", "Sorry, we're not open at weekends."],
     ["Yes, from 9 to 12.", "We're open on Saturday mornings.",
      "Saturday mornings from 9 am."]),
    ("dental-40", ["We see patients Monday to Friday.", "On weekdays."],
     ["Monday to Saturday.", "We see patients every day.", "We're open on Saturdays too."]),
    ("garage-39", ["You can bring it in on Saturday from 8 to 12, but we're closed on Sunday."],
     ["No, we're closed at weekends.", "Yes, we're open on Sunday from 9 to 1.",
      "We're closed on Saturday and Sunday."]),
    ("garage-40", ["We're closed on Sundays.", "Only Sunday, and some holidays."],
     ["We're closed on Saturdays and Sundays.", "We're closed on Mondays.",
      "We're open on Sundays."]),
    ("bakery-42", ["No, we're closed on Mondays and Tuesdays.", "Sorry, we're closed then."],
     ["Yes, we're open on Monday.", "Tuesday we're open from 7 to 3."]),
    ("bakery-43", ["Yes, we're closed on Mondays and Tuesdays."],
     ["We're closed on Sundays.", "We're closed on Mondays."]),
    ("dental-41", ["We're open on Fridays from 8:30 to 1, but closed on Saturdays.",
                   "Fridays yes, 8:30 am to 1 pm; not Saturdays."],
     ["Yes, we're open on Fridays and Saturdays.", "We're open on Saturday mornings.",
      "We're open on Fridays."]),
    ("garage-41", ["No, we're closed on Sundays.", "Monday to Saturday; never on Sunday."],
     ["Yes, we're open all week.", "Yes, seven days a week.", "We're open on Sundays too."]),
    ("bakery-44", ["We're shut on Mondays and Tuesdays."],
     ["We're closed on Sundays.", "On Mondays, Tuesdays and Wednesdays we're closed."]),
    ("dental-42", ["You can drop in on Tuesday from 8:30 to 12:30 or 1:30 to 5:30, but we're "
                   "closed on Saturday."],
     ["Yes, we're open on Tuesday and Saturday.", "We're closed on Tuesday.",
      "Saturday from 9 to 12."]),
    ("garage-42", ["We work Monday to Saturday.", "On weekdays, and Saturday mornings."],
     ["Every day.", "Monday through Sunday.", "We're open on Sundays too, and Saturday."]),
    ("dental-43", ["No, we're open on Wednesdays from 10 to 7.", "No, Wednesday is our late day."],
     ["Yes, we're closed on Wednesdays.", "We're closed on Wednesdays."]),
    ("garage-43", ["No, we're open on Saturdays from 8 to 12.",
                   "No, Saturday mornings we're open.",
                   # scored wrong in the first run: "closed on saturdays" was a claim
                   "No, Oakwood Auto Repair is not closed on Saturdays."],
     ["Yes, we're closed on Saturdays.", "Saturdays we're closed."]),
    ("garage-35", ["Yes, this is Oakwood Auto Repair.", "That's right.",
                   "You've reached Oakwood Auto Repair."],
     ["No, you have the wrong number.", "No, this is Harbor Auto."]),
]


# the natural-phrasing set (held out): replies written with the questions, before any run
NATURAL_PAIRS: list[tuple[str, list[str], list[str]]] = [
    ('bakery-45',
     ['We open at 8 am on Sundays.', "On Sunday we're open from eight until one."],
     ['We open at 7 am.',
      "I don't know that, but I can take a message.",
      "We're closed on Sundays."]),
    ('bakery-46',
     ['Our cinnamon rolls are $3.25 each.', "They're three twenty-five each."],
     ["They're $3.50.", "I don't know that, but I can take a message."]),
    ('bakery-47',
     ["Sorry, birthday cakes need two days' notice, so tomorrow is too soon. The earliest would "
      'be Sunday.',
      "Unfortunately we need 2 days' notice for birthday cakes."],
     ['Yes, you can order one for tomorrow.', 'Sure, no problem!']),
    ('bakery-48',
     ['Croissants are $2.50 each, and a party platter is $45.',
      'A croissant is two fifty and the party platter is forty-five dollars.'],
     ['Croissants are $2.50 and the platter is $35.',
      "I don't know that, but I can take a message."]),
    ('bakery-49',
     ["We're closed on Tuesdays, and on Wednesday we open at 7 am.",
      "Tuesday we're closed. Wednesday we open at seven."],
     ["Yes, we're open Tuesday, and Wednesday we open at 7.",
      "We're closed Tuesday; Wednesday we open at 8.",
      "I don't know that, but I can take a message."]),
    ('bakery-50',
     ['Sorry, we close at 3 pm on Thursdays.',
      "On Thursday we're only open until 3 pm, so after work would be too late."],
     ['Sure, that works!',
      "Yes, we're open until 6 on Thursday.",
      "I don't know that, but I can take a message."]),
    ('bakery-51',
     ['Yes, tomorrow is Sunday and we open at 8 am.', "We're open tomorrow from 8 am to 1 pm."],
     ['Yes, we open at 7 am tomorrow.',
      "No, we're closed tomorrow.",
      "I don't know that, but I can take a message."]),
    ('bakery-52',
     ["Sorry, we close at 3 pm today, so we'd be closed by then.",
      'No, we close at three on Fridays.'],
     ["Yes, we're open until 5 today.",
      'Sure, see you then!',
      "I don't know that, but I can take a message."]),
    ('bakery-53',
     ["No, we're closed on December 26th.", "We're closed on the 26th, sorry."],
     ["Yes, we're open on Saturday the 26th from 8 to 1.",
      "I don't know that, but I can take a message."]),
    ('bakery-54',
     ['Our birthday cakes are $35.', 'Thirty-five dollars.'],
     ['A birthday cake is $45.', "I don't know that, but I can take a message."]),
    ('bakery-55',
     ['Two sourdough loaves are $12 and four cinnamon rolls are $13, so $25 in total.',
      'That comes to twenty-five dollars.'],
     ['That would be $24.', "That's $26.", "I don't know that, but I can take a message."]),
    ('bakery-56',
     ["We need one day's notice for party platters.",
      "Just a day's notice.",
      'Order it the day before, please.'],
     ["We need 2 days' notice.", "I don't know that, but I can take a message."]),
    ('bakery-57',
     ["A croissant is $2.50. I don't know about almond croissants, but I can take a message.",
      "Croissants are two fifty each; I'm not sure about almond ones, but I can take a message."],
     ['A croissant is $2.50, and yes we do almond ones.',
      "We do have almond croissants, $2.50 each. I don't know more, I can take a message.",
      "I don't know that, but I can take a message.",
      'A croissant is $2.50.']),
    ('bakery-58',
     ["We close at 1 pm on Saturdays. I don't know about delivery, but I can take a message."],
     ["We close at 3 pm on Saturdays. I don't know about delivery, but I can take a message.",
      "We close at 1 pm on Saturdays, and we don't deliver. I don't know, I can take a message.",
      "I don't know that, but I can take a message.",
      'We close at 1 pm on Saturdays.']),
    ('bakery-59',
     ["I don't know that, but I can take a message.",
      "I'm not sure about vegan options, but I can take a message."],
     ['Yes, we have vegan bread.',
      "We don't have any vegan products. I don't know, I can take a message."]),
    ('bakery-60',
     ["I don't know that, but I can take a message.",
      "I'm not sure whether we can write names on cakes, but I can take a message."],
     ['Yes, we can write her name on the cake!',
      "We can write a name on it. I don't know the price, I can take a message."]),
    ('bakery-61',
     ["I don't know that, but I can take a message.",
      "I don't know if we have seating, but I can take a message."],
     ['We have a few tables inside.',
      "It's takeaway only. I don't know more, I can take a message."]),
    ('bakery-62',
     ["On Saturdays we're open until 1 pm.", 'We close at one.'],
     ['We close at 3 pm.', "I don't know that, but I can take a message."]),
    ('bakery-63',
     ["We're at 48 Mill Road, Springfield.", 'Forty-eight Mill Road.'],
     ["We're at 84 Mill Road.", "I don't know that, but I can take a message."]),
    ('bakery-64',
     ["A birthday cake is $35, and we need 2 days' notice.",
      'Thirty-five dollars, and please order two days ahead.'],
     ["A birthday cake is $35, and we need a day's notice.",
      "It's $45 and 2 days' notice.",
      "I don't know that, but I can take a message."]),
    ('dental-44',
     ['A check-up is £55.', "That's fifty-five pounds."],
     ['A check-up is £75.',
      "It's $55.",
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-45',
     ['A cleaning is £75.', 'Seventy-five pounds.'],
     ['A cleaning is £55.', "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-46',
     ['Teeth whitening is £299.', "It's two hundred and ninety-nine pounds."],
     ['About £300.', "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-47',
     ["Sorry, teeth whitening needs 7 days' notice, so the earliest would be Thursday the 17th.",
      "Unfortunately that's too soon; whitening needs a week's notice."],
     ['Yes, we can fit you in on Tuesday.',
      'Sure, that works.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-48',
     ['An x-ray is £25, and yes, we see both adults and children.',
      'Twenty-five pounds, and we see kids too.'],
     ['An x-ray is £25, but we only see adults.',
      'An x-ray is £30 and we see children.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-49',
     ["Yes, on Wednesdays we're open until 7 pm, and appointments are booked by phone.",
      "We're open till 7 on Wednesday; you'd need to call us to book, it's by phone only."],
     ["Yes, we're open until 7 pm and you can book online.",
      'We close at 5:30 on Wednesday; book by phone.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-50',
     ["Yes, on Wednesdays we're open until 7 pm, so that works.",
      "We're open till seven on Wednesdays."],
     ['Sorry, we close at 5:30.',
      "No, we're closed then.",
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-51',
     ["Sorry, we close at 5:30 pm today, so 6:30 is too late. On Wednesday we're open until 7 pm.",
      'Unfortunately we close at half five on Tuesdays.'],
     ["Yes, we're open until 7 tonight.",
      'Sure, see you then.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-52',
     ['Sorry, on Fridays we close at 1 pm.',
      "Unfortunately we're only open until one on Fridays."],
     ["Yes, Friday we're open until 5:30.",
      'Sure, that works.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-53',
     ["No, we're closed on Christmas Eve.", "Sorry, we're closed all day on the 24th."],
     ["Yes, we're open in the morning from 8:30 to 12:30.",
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-54',
     ['An x-ray is £25.', 'Twenty-five pounds.'],
     ['An x-ray is £55.',
      "It's $25.",
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-55',
     ['We close at 1 pm on Fridays.', "On Friday we're open 8:30 until one."],
     ['We close at 5:30 on Fridays.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-56',
     ["A filling is £120. I'm not sure whether we take NHS patients, but I can take a message for "
      'the practice.'],
     ["A filling is £120 and we are a private practice. I'm not sure, I can take a message.",
      "I'm not sure about that, but I can take a message for the practice.",
      'A filling is £120.']),
    ('dental-57',
     ["Teeth whitening is £299. I'm not sure about payment plans, but I can take a message for "
      'the practice.'],
     ["Teeth whitening is £299, and you can pay in instalments. I'm not sure, I can take a "
      'message.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-58',
     ["I'm not sure about that, but I can take a message for the practice.",
      "I'm not sure whether we offer sedation, but I can take a message for the practice."],
     ['Yes, we offer sedation.',
      "We don't offer sedation. I'm not sure about more, I can take a message."]),
    ('dental-59',
     ["I'm not sure about that, but I can take a message for the practice."],
     ['Yes, we accept Bupa.', "We don't take insurance, I'm not sure, I can take a message."]),
    ('dental-60',
     ["I'm not sure about that, but I can take a message for the practice.",
      "I'm not sure if the surgery is wheelchair accessible, but I can take a message for the "
      'practice.'],
     ['Yes, we have a ramp.',
      "We're on the ground floor, so that's fine. I'm not sure, I can take a message."]),
    ('dental-61',
     ['A cleaning is £75 and a check-up £55, so £130 in total.',
      "That's one hundred and thirty pounds altogether."],
     ['That would be £140.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-62',
     ["It's 020 7946 0321.", 'Oh two oh, seven nine four six, oh three two one.'],
     ["I'm not sure about that, but I can take a message for the practice."]),
    ('dental-63',
     ["We need two days' notice for a cleaning.", 'Please book 48 hours ahead.'],
     ["A day's notice.",
      '7 days.',
      "I'm not sure about that, but I can take a message for the practice."]),
    ('dental-64',
     ["Yes, we're open until 7 pm today.",
      "Yes, we're open till seven on Wednesdays, see you soon."],
     ['No, we close at 5:30.',
      "Sorry, we'll be closed by then.",
      "I'm not sure about that, but I can take a message for the practice."]),
    ('garage-44',
     ['An oil change is $49.', 'Forty-nine bucks.'],
     ["It's $59.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-45',
     ['A tire rotation is $25.', 'Twenty-five dollars.'],
     ["It's $30.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-46',
     ['A brake inspection is $30.', 'We can do a brake inspection for thirty dollars.'],
     ['A brake inspection is $25.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-47',
     ["Sorry, wheel alignments need a day's notice, so the earliest would be tomorrow.",
      "Unfortunately we can't do it today; alignments need 1 day's notice."],
     ['Yes, we can do it today.',
      'Sure, no problem.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-48',
     ["Yes, oil changes are done while you wait, and it's $49.",
      "You can stay, it's forty-nine dollars."],
     ["No, you'll have to leave it. It's $49.",
      'Oil changes are $59 and done while you wait.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-49',
     ['Yes, we work on cars and light trucks, and a brake inspection is $30.',
      'We do work on light trucks like your F-150; a brake inspection is thirty dollars.'],
     ['We only work on cars. A brake inspection is $30.',
      'Yes, we work on trucks; a brake inspection is $25.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-50',
     ['Sorry, on Saturdays we close at noon.', "Unfortunately Saturday we're only open 8 to 12."],
     ["Sure, Saturday we're open until 5:30.",
      'Yes, that works.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-51',
     ['Sorry, we close at 5:30 pm on weekdays.',
      "Unfortunately that's too late, we close at five thirty."],
     ["Yes, we're open until 6.",
      'Sure, that works.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-52',
     ["Yes, we're open until noon, so you'll make it.", "We close at 12, so you'll be fine."],
     ["No, we're closed already.",
      'We close at 11:30.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-53',
     ["No, we're closed on New Year's Eve.", "We're closed on the 31st, sorry."],
     ["Yes, we're open on Thursday from 7:30 to 5:30.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-54',
     ['A wheel alignment is $89.99.', 'Eighty-nine ninety-nine.'],
     ['About $90.',
      "It's around 90.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-55',
     ["Yes, Monday works. Timing belt replacements need 3 days' notice and that's four days away.",
      'Sure, we can do Monday.'],
     ["Sorry, that's too soon.",
      "No, we need 3 days' notice.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-56',
     ['The timing belt is $450 and the oil change $49, so $499 total.',
      'Four hundred and ninety-nine dollars.'],
     ['About $500.',
      "That's $489.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-57',
     ["A tire rotation is $25. I don't have information about diesels, but I can take a message "
      'and someone will call you back.'],
     ["A tire rotation is $25, and we don't work on diesels. I don't have that information, I can "
      'take a message.',
      "I don't have that information, but I can take a message and someone will call you back.",
      'A tire rotation is $25.']),
    ('garage-58',
     ["We open at 8 am on Saturdays. I don't have information about smog checks, but I can take a "
      'message and someone will call you back.'],
     ["We open at 7:30 on Saturday. I don't know about smog checks, but I can take a message.",
      "We open at 8 on Saturday and we do smog checks. I'm not sure, message.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-59',
     ["I don't have that information, but I can take a message and someone will call you back.",
      "I'm not sure about financing, but I can take a message and someone will call you back."],
     ['Yes, we offer financing.',
      "We don't offer payment plans. I don't know, I can take a message."]),
    ('garage-60',
     ["I don't have that information, but I can take a message and someone will call you back."],
     ["Sure, bring it in and we'll take a look.",
      "We can read the code for free. I don't know more, message."]),
    ('garage-61',
     ["I don't have that information, but I can take a message and someone will call you back."],
     ["No, you'd need to go somewhere else for that.",
      "We don't do glass. I don't have that information, but I can take a message."]),
    ('garage-62',
     ["We're open until noon on Saturday.", 'Until 12.'],
     ['Until 5:30.',
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-63',
     ["We're at 350 Harbor Boulevard, Fresno.", 'Three fifty Harbor Blvd.'],
     ["We're at 530 Harbor Boulevard.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-64',
     ['Yes, we open at 7:30 am on weekdays.',
      'We open at seven thirty, so someone will be there.'],
     ['No, we open at 8.',
      "Sorry, we're not open until 8.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('garage-65',
     ["Sorry, we're closed today for Christmas Eve.", "No, we're closed today."],
     ["Yes, we're open today from 7:30 to 5:30.",
      "I don't have that information, but I can take a message and someone will call you back."]),
    ('dental-65',
     ["No, we're closed at weekends; we're open Monday to Friday.",
      "Sorry, we're closed on Saturdays and Sundays."],
     ["Yes, we're open on Saturday mornings.",
      "I'm not sure about that, but I can take a message for the practice."]),
    ('garage-66',
     ["You can bring it in on Saturday between 8 am and noon; we're closed Sundays.",
      'Saturday mornings, 8 to 12.'],
     ["No, we're closed weekends.",
      'Saturday 8 to 5:30, and Sunday too.',
      "I don't have that information, but I can take a message and someone will call you back."]),
]

_BK_FB = "I don't know that, but I can take a message."
_DN_FB = "I'm not sure about that, but I can take a message for the practice."
_GA_FB = ("I don't have that information, but I can take a message and someone will call you "
          "back.")
# the second natural-phrasing set (held out, 2026-12-07): replies written with the questions,
# before any run of them
NATURAL_PAIRS_2: list[tuple[str, list[str], list[str]]] = [
    ('bakery-65',
     ["Not quite yet, we open at 7 am, so in about twenty minutes.",
      "No, we're not open yet; we open at seven."],
     ["Yes, we're open until 3 today!",
      "Not yet, we open at 8 am.",
      _BK_FB]),
    ('bakery-66',
     ["Three sourdough loaves and two croissants come to $23.",
      "That's $18 for the loaves and $5 for the croissants, so twenty-three dollars in total."],
     ["That would be $20.50.",
      "That comes to $25.",
      _BK_FB]),
    ('bakery-67',
     ["On Sundays we close at 1 pm.", "We're open until one on Sundays."],
     ["We close at 3 pm.",
      "We're closed on Sundays.",
      _BK_FB]),
    ('bakery-68',
     ["Yes, party platters need one day's notice, so Saturday is fine.",
      "Sure, if you order today we can have a party platter ready for Saturday."],
     ["Sorry, that's too soon.",
      "No, party platters need 2 days' notice, and we're closed on Saturday.",
      _BK_FB]),
    ('bakery-69',
     ["Sorry, tomorrow is Tuesday and we're closed on Tuesdays. We're open again Wednesday "
      "from 7 am.",
      "Unfortunately we're not open on Tuesdays."],
     ["Sure, that works! See you at eleven.",
      "Yes, tomorrow we're open from 7 to 3.",
      _BK_FB]),
    ('bakery-70',
     [_BK_FB,
      "I'm not sure whether everything is nut-free, but I can take a message."],
     ["Yes, everything is nut-free.",
      "Our products may contain traces of nuts. I don't know more, but I can take a message.",
      "We don't use nuts in anything."]),
    ('bakery-71',
     ["We're open until 3 pm on Fridays. I don't know about sandwiches, but I can take a "
      "message.",
      "On Friday we close at three. I'm not sure about lunch items, but I can take a message."],
     ["We close at 3 pm on Fridays, and we don't do sandwiches. I don't know more, but I can "
      "take a message.",
      "We're open until 5 on Fridays. I don't know about sandwiches, but I can take a message.",
      _BK_FB,
      "We're open until 3 pm on Fridays."]),
    ('bakery-72',
     ["Yes, we're open on Christmas Eve from 7 am to 3 pm, and a dozen croissants is $30.",
      "We're open on the 24th, seven to three. Twelve croissants at $2.50 each come to thirty "
      "dollars."],
     ["Sorry, we're closed on Christmas Eve. A dozen croissants would be $30.",
      "Yes, we're open on Christmas Eve, and a dozen croissants is $25.",
      _BK_FB]),
    ('bakery-73',
     ["Sorry, on Sundays we close at 1 pm, so 2:30 is too late. You could pick it up before 1.",
      "Unfortunately we're only open until one on Sundays."],
     ["Sure, that works!",
      "Yes, on Sundays we're open until 3.",
      _BK_FB]),
    ('bakery-74',
     ["Yes, we're open until 1 pm today, so quarter to one is fine.",
      "You'll make it, we close at one."],
     ["Sorry, we'll be closed by then.",
      "No, we close at 12:30 on Saturdays.",
      _BK_FB]),
    ('bakery-75',
     [_BK_FB,
      "I'm not sure whether we do wholesale, but I can take a message."],
     ["Yes, we supply cafes!",
      "Sorry, we're retail only. I don't know more, but I can take a message."]),
    ('bakery-76',
     ["You can reach us on 555 0142.", "It's five five five, oh one four two."],
     ["You can order cakes online at our website.",
      _BK_FB]),
    ('dental-66',
     ["We're closed for lunch at the moment, we're back at 1:30.",
      "Sorry, we're on our lunch break until half past one."],
     ["Yes, we're open now, pop in!",
      "Yes, come in now, we're open until 5:30.",
      _DN_FB]),
    ('dental-67',
     ["Two fillings and an x-ray would be £265.",
      "That's £240 for the fillings plus £25 for the x-ray, so two hundred and sixty-five "
      "pounds."],
     ["That would be £145.",
      "That comes to $265.",
      _DN_FB]),
    ('dental-68',
     ["We close at 5:30 pm on Mondays.",
      "On Monday we're open 8:30 until 12:30 and 1:30 until half five."],
     ["We close at 7 pm on Mondays.",
      "We're open until 5 on Mondays.",
      _DN_FB]),
    ('dental-69',
     ["Teeth whitening needs 7 days' notice.", "Please book a week ahead for whitening."],
     ["We need 2 days' notice.",
      "48 hours' notice is enough.",
      _DN_FB]),
    ('dental-70',
     ["Sorry, we're closed on Monday the 28th for the Boxing Day bank holiday. We're open again "
      "on Tuesday the 29th.",
      "Unfortunately Monday is a bank holiday, so we're closed."],
     ["Yes, we see children, so Monday works.",
      "Sure, on Monday we're open 8:30 to 12:30 and 1:30 to 5:30.",
      _DN_FB]),
    ('dental-71',
     [_DN_FB,
      "I'm sorry you're in pain. I'm not sure whether we keep emergency slots, but I can take a "
      "message for the practice."],
     ["Yes, we keep emergency appointments free every day.",
      "Come straight in today and we'll see you. " + _DN_FB,
      "You should call 111. " + _DN_FB]),
    ('dental-72',
     ["A check-up is £55, and we see children too. I'm not sure about gum shields, but I can "
      "take a message for the practice."],
     ["A check-up is £55, and yes, we make gum shields. I'm not sure of the price, I can take "
      "a message.",
      "A check-up for him is £55.",
      _DN_FB,
      "A check-up is £45. I'm not sure about gum shields, but I can take a message."]),
    ('dental-73',
     ["No, we're closed at weekends. On Monday we open at 8:30 am.",
      "Sorry, we're closed tomorrow; Monday we're open from half eight."],
     ["Yes, we're open tomorrow morning.",
      "We're closed tomorrow, and on Monday we open at 10.",
      _DN_FB]),
    ('dental-74',
     ["Sorry, on Thursdays we're closed for lunch from 12:30 to 1:30, but 1:30 or later would "
      "be fine.",
      "One o'clock is during our lunch break, I'm afraid; could you do half past one?"],
     ["Yes, 1 pm works.",
      "We're open 8:30 to 5:30 on Thursdays, so come whenever suits.",
      _DN_FB]),
    ('dental-75',
     ["Sorry, on Wednesdays we don't open until 10 am.",
      "Not at quarter past nine, I'm afraid; we open at 10 on Wednesdays."],
     ["Yes, we open at 8:30, come on down.",
      "We're open now, see you then!",
      _DN_FB]),
    ('dental-76',
     [_DN_FB,
      "I'm not sure whether we do home visits, but I can take a message for the practice."],
     ["Yes, we do home visits.",
      "No, we only see patients at the practice. " + _DN_FB]),
    ('dental-77',
     ["Sorry, we're closed on Saturdays. We're open Monday to Friday.",
      "Unfortunately we aren't open at the weekend; could you do a weekday?"],
     ["Yes, Saturday morning works.",
      "Sure, on Saturday we're open 9 to 12.",
      _DN_FB]),
    ('garage-67',
     ["We close at 5:30 today, so you've got about 20 minutes.",
      "About twenty minutes, we're open until five thirty."],
     ["We close at 6, so you've got about an hour.",
      "Sorry, we're already closed.",
      _GA_FB]),
    ('garage-68',
     ["That would be $104 all together.",
      "The rotation is $25, the oil change $49 and the brake inspection $30, so one hundred "
      "and four dollars."],
     ["That comes to $94.",
      "That would be $109.",
      _GA_FB]),
    ('garage-69',
     ["A wheel alignment is $89.99.", "It's eighty-nine ninety-nine."],
     ["About $90.",
      "A wheel alignment is $49.",
      _GA_FB]),
    ('garage-70',
     ["We need 3 days' notice for a timing belt replacement.",
      "Three days ahead, please."],
     ["We need a day's notice.",
      "We need a week.",
      _GA_FB]),
    ('garage-71',
     ["Yes, we're open until 5:30 tomorrow, and oil changes are done while you wait.",
      "Sure, two o'clock tomorrow works, and you can wait for it."],
     ["Sorry, we're closed tomorrow.",
      "Yes, but you'd need to leave the car with us.",
      _GA_FB]),
    ('garage-72',
     [_GA_FB,
      "I'm not sure whether we patch tires, but I can take a message and someone will call you "
      "back."],
     ["Sure, bring it in and we'll patch it.",
      "Yes, we can fix flats. " + _GA_FB,
      "A tire rotation is $25. " + _GA_FB]),
    ('garage-73',
     ["A brake inspection is $30. I don't have information about warranties, but I can take a "
      "message and someone will call you back."],
     ["A brake inspection is $30, and we offer a 12-month warranty. " + _GA_FB,
      "A brake inspection is $30.",
      _GA_FB,
      "A brake inspection is $25. " + _GA_FB]),
    ('garage-74',
     ["We open at 7:30 am on weekdays, and on Saturdays we close at noon.",
      "Weekdays we open at seven thirty; Saturday we're open 8 to 12."],
     ["We open at 7:30 on weekdays and close at 5:30 on Saturdays.",
      "We open at 8 on weekdays, and Saturday we close at noon.",
      _GA_FB]),
    ('garage-75',
     ["Sorry, on Saturdays we don't open until 8 am.",
      "We open at 8 on Saturday, so 7:30 is a little early."],
     ["Sure, that works.",
      "Yes, we open at 7:30 on Saturdays.",
      _GA_FB]),
    ('garage-76',
     ["We open at 7:30 this morning.", "You can drop it off from seven thirty."],
     ["We open at 8 am.",
      "You can drop it off any time.",
      _GA_FB]),
    ('garage-77',
     [_GA_FB,
      "I'm not sure about detailing, but I can take a message and someone will call you back."],
     ["Yes, we offer interior detailing.",
      "No, we only do repairs. " + _GA_FB]),
    ('garage-78',
     ["A timing belt replacement is $450.",
      "Four hundred and fifty dollars, and we need 3 days' notice."],
     ["It's $350.",
      "About $500.",
      _GA_FB]),
]

_VET_FB = "I'm sorry, I don't know that, but I can take a message."
# the developers' natural questions about the vet (tuning)
VET_PAIRS: list[tuple[str, list[str], list[str]]] = [
    ("vet-01", ["A nail trim is 15 dollars.", "We charge fifteen dollars for a nail trim."],
     ["A nail trim is 25 dollars.", _VET_FB]),
    ("vet-02", ["A vaccination is $35. I'm sorry, I don't know about appointments, but I can "
                "take a message."],
     ["A vaccination is $35, and no appointment is needed.", _VET_FB,
      "A vaccination is $45. " + _VET_FB]),
    ("vet-03", ["Yes, on Saturdays we're open from 9 am to 1 pm.", "Sure, ten works."],
     ["No, we're closed on Saturdays.", _VET_FB]),
    ("vet-04", ["No, sorry, we're closed on Sundays.", "Unfortunately we aren't open on Sunday."],
     ["Yes, we're open Sunday.", _VET_FB]),
    ("vet-05", [_VET_FB, "I'm not sure about surgery, but I can take a message."],
     ["Yes, we do surgery on Saturdays.", "No, we don't. " + _VET_FB]),
    ("vet-06", [_VET_FB], ["Yes, there's parking behind the clinic.", "No parking, sorry."]),
    ("vet-07", ["A check-up is 50 dollars.", "Fifty dollars."], ["A check-up is $35.", _VET_FB]),
    ("vet-08", ["A dental cleaning is $120.", "That's one hundred and twenty dollars."],
     ["A dental cleaning is $50.", _VET_FB]),
    ("vet-09", ["Sorry, a dental cleaning needs 3 days' notice, so Saturday is the earliest."],
     ["Yes, tomorrow works.", "Sure, no problem."]),
    ("vet-10", ["Yes, we're open until 6 pm today.", "We close at 6 today."],
     ["No, we're closed.", "We're open until 7 today.", _VET_FB]),
    ("vet-11", ["Sorry, we close at 6 pm today.", "No, we're closed in the evening."],
     ["Yes, bring him in tonight.", "Sure, we're open until 9."]),
    ("vet-12", ["Yes, a nail trim is $15. I don't know about pet insurance, but I can take a "
                "message."],
     ["Yes, nail trims are $15, and we take all insurance.", _VET_FB + " Nail trims are $20."]),
    ("vet-13", [_VET_FB], ["Yes, we sell dog food.", "No, we don't sell food."]),
    ("vet-14", [_VET_FB], ["Yes, we can microchip your puppy.", "Microchipping is $35."]),
    ("vet-15", ["We're at 48 Harbor Street, Portland."], ["We're at 84 Harbor Street.", _VET_FB]),
    ("vet-16", ["A check-up is $50, and yes, walk-ins are welcome.",
                "Fifty dollars, and you can just walk in."],
     ["A check-up is $50.", "A check-up is $35 and walk-ins are welcome.", _VET_FB]),
    ("vet-17", ["No, we're closed on Sundays."], ["Yes, we're open Sundays.", _VET_FB]),
    ("vet-18", ["Yes, tomorrow we open at 8 am.", "Sure, we're open from 8."],
     ["No, we're closed tomorrow.", "Yes, we open at 9 tomorrow.", _VET_FB]),
    ("vet-19", ["A vaccination is $35."], ["A rabies shot is $15.", _VET_FB]),
    ("vet-20", [_VET_FB], ["Yes, we board dogs over Christmas.", "No, we don't board pets."]),
    ("vet-21", ["A nail trim is $15. I don't know about grooming, but I can take a message."],
     ["A nail trim is $15, and yes, we do grooming.", _VET_FB, "A nail trim is $50. " + _VET_FB]),
    ("vet-22", [_VET_FB], ["Dr. Smith is working today.", "Yes, the vet is in today."]),
    ("vet-23", ["Vaccinations are $35 and nail trims are $15."],
     ["Vaccinations are $35.", "Vaccinations are $50 and nail trims are $15.", _VET_FB]),
    ("vet-24", ["We close at 1 pm on Saturdays."], ["We close at 6 pm on Saturdays.", _VET_FB]),
    ("vet-25", ["Yes, we're open until 6 pm today."], ["No, we're closed now.", _VET_FB]),
]

PAIRS += NATURAL_PAIRS + NATURAL_PAIRS_2 + VET_PAIRS


def test_pairs_cover_every_category_of_every_persona():
    covered = {(BY_ID[cid].persona, BY_ID[cid].category) for cid, good, bad in PAIRS
               if good and bad}
    assert covered == {(BY_ID[cid].persona, BY_ID[cid].category) for cid in BY_ID}
    assert {c for p, c in covered if p == "bakery"} == set(CATEGORIES)
    assert len(PAIRS) >= 24


@pytest.mark.parametrize("cid, good, bad", PAIRS, ids=[p[0] for p in PAIRS])
def test_hand_written_answers(cid, good, bad):
    case = BY_ID[cid]
    for answer in good:
        ok, reasons = score(case, answer)
        assert ok, (answer, normalise(answer), reasons)
    for answer in bad:
        ok, reasons = score(case, answer)
        assert not ok, (answer, normalise(answer))
        assert reasons


def test_every_case_has_a_hand_written_pair():
    assert {cid for cid, _, _ in PAIRS} == set(BY_ID)


def test_score_reports_which_pattern_failed():
    case = BY_ID["bakery-19"]
    ok, reasons = score(case, "That's 8.50 dollars.")
    assert not ok
    assert any(r.startswith("missing") for r in reasons)
    assert any(r.startswith("forbidden") and "8.50" in r for r in reasons)
    assert score(case, "") == (False, [f"missing {case.must[0]!r}"])


def test_configured_fallback_passes_every_unknown_case():
    for c in CASES:
        if c.category == "unknown":
            fallback = PERSONAS[c.persona].business["fallback"]
            assert score(c, fallback)[0], (c.id, score(c, fallback)[1])
