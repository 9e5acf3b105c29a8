"""The models every call of the process shares, as one bundle the sessions are built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the models' modules load their runtimes (onnx, llama.cpp) when imported
    from pipeline.audio.smart_turn import SmartTurn
    from pipeline.audio.vad import SileroModel
    from pipeline.facts.relevance import FactIndex
    from pipeline.llm.base import Llm
    from pipeline.llm.end_of_message import EndOfMessage
    from pipeline.stt.base import SpeechToText
    from pipeline.tts.base import TextToSpeech


@dataclass
class Engines:
    """Models shared by every call of the process (read-only after warm-up)."""
    vad: SileroModel
    stt: SpeechToText
    llm: Llm
    tts: TextToSpeech
    smart_turn: SmartTurn | None = None
    """End-of-turn completeness model; None: turns end on silence alone."""
    end_of_message: EndOfMessage | None = None
    """Asked whether the words at a pause end the caller's message; None: not asked."""
    fact_index: FactIndex | None = None
    """The business's facts embedded, to tell by meaning which of them a question is about
    (None: no [business] facts, or judged by the computed rules alone)."""
    max_tokens: int = 96
    temperature: float = 0.2
    history_turns: int = 6

    def warm_up(self) -> None:
        self.vad.stream().feed(np.zeros(1024, dtype=np.float32))
        if self.smart_turn is not None:
            self.smart_turn.complete(np.zeros(16000, dtype=np.float32))
        if self.end_of_message is not None:
            self.end_of_message.probability("Hello")  # evaluates the prompt's prefix
        self.stt.warm_up()
        self.tts.warm_up()
        self.llm.warm_up()
