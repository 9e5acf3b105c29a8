"""When a pause ends the caller's turn: silence, the sound of the turn's end, its last words.

Pure logic. A fixed silence either cuts callers off when they pause mid-sentence ("are you
open on ... Sunday?") or makes every answer wait. Instead each pause gets a *verdict*, and
the verdict sets how much silence ends the turn:

- complete: the audio model is confident the caller finished and the words do not trail
  off: a short wait (``min_silence``);
- incomplete: the words trail off (a conjunction, an article, a preposition, "um", digits
  being dictated) or the audio model says unfinished: the longest wait (``max_silence``);
- unsure (no score yet, or a middling one): the default wait (``[turn]`` end-of-turn silence).

The verdict is revised as signals arrive: the completeness score first (a few tens of ms
after the pause starts), the transcript of the pause later.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Verdict(enum.Enum):
    COMPLETE = "complete"
    UNSURE = "unsure"
    INCOMPLETE = "incomplete"


class Reason(enum.Enum):
    """Why a turn ended (recorded per turn, counted in the metrics)."""
    COMPLETE = "complete"        # sounded finished: ended after the short wait
    INCOMPLETE = "incomplete"    # sounded unfinished, but nothing followed the longest wait
    TIMEOUT = "timeout"          # no confident verdict: ended after the default wait
    MAX_TURN = "max_turn"        # the turn reached its longest allowed length


class Cue(enum.Enum):
    """What the transcript at the pause says about the turn."""
    UNKNOWN = "unknown"          # no transcript yet
    CONTINUES = "continues"      # ends on a word that needs more after it
    ENDS = "ends"                # nothing in the words says more is coming
    ASKS = "asks"                # a whole question: ends on "?" after a word that can end one


@dataclass(frozen=True)
class EndOfTurnSettings:
    """Durations in samples (16 kHz)."""
    smart: bool = True
    """False: every turn ends after the default silence (score and words are not asked)."""
    min_silence: int = 3200
    max_silence: int = 24000
    complete_threshold: float = 0.5
    """Scores at or above: complete."""
    incomplete_threshold: float = 0.1
    """Scores below: incomplete (between the two: unsure)."""
    words_lift_low_scores: bool = False
    """A score below ``incomplete_threshold`` whose words end the sentence: unsure, not
    incomplete (the default wait, not the longest)."""
    questions_lift_low_scores: bool = True
    """The same for words that are a whole question only: the audio model scores some
    voices' questions (rising pitch at the end) as unfinished, while the speech-to-text
    writes "?" only for what it heard as a question."""
    message_end_below: float = 0.0
    """A language model's probability that the caller's message ends after these words
    (``pipeline/llm/end_of_message.py``) below this turns words that seem to end into
    words that go on ("had he married a more amiable woman"); 0: not used."""
    use_score: bool = True
    use_words: bool = True
    """Either signal can be left out (bench/turn_taking.py measures each alone)."""


def verdict(s: EndOfTurnSettings, score: float | None, cue: Cue) -> Verdict:
    if not s.smart:
        return Verdict.UNSURE
    if cue is Cue.CONTINUES and s.use_words:
        return Verdict.INCOMPLETE
    if score is None or not s.use_score:
        return Verdict.UNSURE
    if score >= s.complete_threshold:
        return Verdict.COMPLETE
    lifted = s.use_words and ((s.words_lift_low_scores and cue in (Cue.ENDS, Cue.ASKS))
                              or (s.questions_lift_low_scores and cue is Cue.ASKS))
    if score < s.incomplete_threshold and not lifted:
        return Verdict.INCOMPLETE
    return Verdict.UNSURE


def wait_for(s: EndOfTurnSettings, v: Verdict, default: int, words_due: bool = False) -> int:
    """Silence (samples) after the last speech that ends a turn with verdict ``v``.
    ``words_due``: the pause's transcript is on its way; an unsure turn waits for it (up to
    the longest wait) rather than end just before the words could say it goes on."""
    if v is Verdict.UNSURE and words_due and s.smart and s.use_words:
        return max(s.max_silence, default)
    return {Verdict.COMPLETE: s.min_silence, Verdict.UNSURE: default,
            Verdict.INCOMPLETE: max(s.max_silence, default)}[v]


def reason(v: Verdict) -> Reason:
    return {Verdict.COMPLETE: Reason.COMPLETE, Verdict.UNSURE: Reason.TIMEOUT,
            Verdict.INCOMPLETE: Reason.INCOMPLETE}[v]


# --- the transcript's cues ---------------------------------------------------------------------

def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# words a caller's sentence does not end on: it goes on after them
_CONTINUATION = _word_set("""
    and or but so because if when while whether than then
    the a an my your our their his her its this these those some any every
    to of on in at for from with about into onto by like as
    is are was were do does did can could will would should have has had be am
    i he she we they i'd he'd she'd we'd they'd i'm we're they're i'll we'll there's
    very more most rather quite too really just than
    um uh er erm uhm hmm mm
""")
_DIGIT_WORDS = _word_set("zero oh one two three four five six seven eight nine ten double triple")
_TRAILING_OFF = ("...", "…", "-", "—", ",")
_WORD = re.compile(r"[a-z0-9']+")


def cue(text: str) -> Cue:
    """The cue in a transcript of the turn so far (as the speech-to-text wrote it)."""
    t = text.strip().lower()
    if not t:
        return Cue.UNKNOWN
    if t.endswith(_TRAILING_OFF):
        return Cue.CONTINUES
    words = _WORD.findall(t)
    if not words:
        return Cue.UNKNOWN
    # the last word before the mark: the speech-to-text may write "Are you open on?"
    if words[-1] in _CONTINUATION:
        return Cue.CONTINUES
    if _dictating(words):
        return Cue.CONTINUES
    return Cue.ASKS if t.endswith("?") else Cue.ENDS


def end_of_message_can_change(text: str) -> bool:
    """Whether a language model's end-of-message probability can change the cue of ``text``:
    only words that seem to end can turn into words that go on (a "?" the speech-to-text
    heard, or a trailing "and", already says what it says)."""
    return cue(text) is Cue.ENDS


def words_cue(s: EndOfTurnSettings, text: str, end_of_message: float | None = None) -> Cue:
    """``cue(text)``, unless the language model's ``end_of_message`` probability says that
    words which seem to end go on."""
    if (end_of_message is not None and end_of_message < s.message_end_below
            and end_of_message_can_change(text)):
        return Cue.CONTINUES
    return cue(text)


def _dictating(words: list[str]) -> bool:
    """The turn ends inside a run of digits shorter than a phone number: more may follow."""
    digits = 0
    for w in reversed(words):
        if w.isdigit():
            digits += len(w)
        elif w in _DIGIT_WORDS:
            digits += 1
        else:
            break
    return 2 <= digits < 10


# --- a caller's sound over the bot: an interruption, or not --------------------------------

_BACKCHANNEL = _word_set("""
    mm mhm mmhm mhmm uhhuh hmm hm um uh er ah oh okay ok yeah yep yes yup right sure
    alright aha huh wow cool great nice
""")
_STOP = _word_set("stop wait no hold hang sorry excuse pardon what")
# a hum however it is spelt: Whisper writes "mm-hmm" as "Mm-mm", "MmMm", "Mmm"
_HUMMED = re.compile(r"[mh]*m[mh]*|uh+uh")


def false_interruption(text: str, min_words: int) -> bool:
    """Caller sound over the bot that should not stop it: no words, only backchannel
    ("mm-hmm", "okay"), or fewer than ``min_words`` words none of which asks it to stop."""
    # a word cut short ("f-") is a sound, not a word
    whole = " ".join(w for w in text.lower().split() if not w.endswith("-"))
    words = _WORD.findall(whole.replace("-", ""))
    if any(w in _STOP for w in words):
        return False
    if all(w in _BACKCHANNEL or _HUMMED.fullmatch(w) for w in words):
        return True
    return len(words) < min_words
