"""A trained small HookedTransformer on disk: config, weights, tokenizer.

Folder layout (written by the organism trainer, read by `tools.target`):
    config.json         the HookedTransformerConfig fields that were set
    model.safetensors   the state dict
    tokenizer.json, tokenizer_config.json   a word-level HF tokenizer
    manifest.json       (organisms only) ground truth; never shown to agents
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import UserError

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedTokenizerFast

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def word_level_tokenizer(names: list[str]) -> PreTrainedTokenizerFast:
    """A whitespace-splitting tokenizer over `names` (id = index); `<bos>`, `<pad>`, `<unk>` special."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={n: i for i, n in enumerate(names)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>")


def is_checkpoint(path: Path) -> bool:
    """Whether `path` is a folder holding a saved checkpoint."""
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def save_checkpoint(
    model: HookedTransformer, config: dict[str, Any], tokenizer: PreTrainedTokenizerFast, out: Path
) -> None:
    """Write the three parts of a checkpoint into `out` (created if missing)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    tokenizer.save_pretrained(str(out))


def weights_hash(path: Path) -> str:
    """sha256 prefix of the weights file: identifies exactly these weights."""
    h = hashlib.sha256()
    with open(path / WEIGHTS_FILE, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_checkpoint(path: Path, device: str = "cpu") -> HookedTransformer:
    """A HookedTransformer with its tokenizer, in eval mode, from a checkpoint folder."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import PreTrainedTokenizerFast

    if not is_checkpoint(path):
        raise UserError(f"{path} is not a model checkpoint: expected {CONFIG_FILE} and {WEIGHTS_FILE} in it")
    try:
        cfg = HookedTransformerConfig(**json.loads((path / CONFIG_FILE).read_text()), device=device)
        state = load_file(str(path / WEIGHTS_FILE), device=device)
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    except (OSError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise UserError(f"checkpoint {path} is unreadable ({e}); delete the folder and train it again") from None
    model = HookedTransformer(cfg, tokenizer=tokenizer)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model
