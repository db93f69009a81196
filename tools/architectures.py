"""Which Hugging Face architectures load from local files (GGUF, `hf:PATH`), and how.

A model read by transformers becomes a HookedTransformer through two parts per architecture: a
config builder (HF config -> HookedTransformerConfig fields) and the TransformerLens weight
converter that maps its weights (`transformer_lens.pretrained.weight_conversions`). Llama, GPT-2
and the Gemma family get builders here, read from the HF config rather than from a model name
(TransformerLens knows Gemma only by its hub names, which a GGUF file does not carry); the other
architectures use TransformerLens's own reading of an HF config (`convert_hf_model_config`).

Why HookedTransformer and not TransformerBridge (which transformer-lens 3.9 recommends): the tools
use `start_at_layer` (the bridge raises NotImplementedError: HF owns its layer loop), TL's
key-value cache, and checkpoints saved as HookedTransformer state dicts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.errors import UserError

# TransformerLens allocates an n_ctx x n_ctx mask per layer; SmolLM2's 8192 would cost 2 GB
# across 30 layers for prompts we never send.
MAX_CTX = 2048


@dataclass(frozen=True)
class Architecture:
    """How one Hugging Face architecture becomes a HookedTransformer."""

    config: Callable[[Any, str], dict[str, Any]]
    """HookedTransformerConfig fields from the HF config and the architecture's name (name, device,
    dtype and BOS aside)."""
    converter: str
    """The TransformerLens weight converter's name in `transformer_lens.pretrained.weight_conversions`."""


def _llama_config(c: Any, arch: str) -> dict[str, Any]:
    n_kv = c.num_key_value_heads
    rope = getattr(c, "rope_parameters", None) or {}
    return {
        "d_model": c.hidden_size,
        "d_head": c.hidden_size // c.num_attention_heads,
        "n_heads": c.num_attention_heads,
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": min(c.max_position_embeddings, MAX_CTX),
        "eps": c.rms_norm_eps,
        "d_vocab": c.vocab_size,
        "act_fn": c.hidden_act,
        "n_key_value_heads": n_kv if n_kv != c.num_attention_heads else None,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": c.hidden_size // c.num_attention_heads,
        "rotary_base": rope.get("rope_theta", getattr(c, "rope_theta", 10000.0)),
        "final_rms": True,
        "gated_mlp": True,
        "original_architecture": arch,
    }


def _gpt2_config(c: Any, arch: str) -> dict[str, Any]:
    return {
        "d_model": c.n_embd,
        "d_head": c.n_embd // c.n_head,
        "n_heads": c.n_head,
        "d_mlp": c.n_embd * 4,
        "n_layers": c.n_layer,
        "n_ctx": min(c.n_positions, MAX_CTX),  # transformers 5 dropped the n_ctx alias
        "eps": c.layer_norm_epsilon,
        "d_vocab": c.vocab_size,
        "act_fn": c.activation_function,
        "use_attn_scale": True,
        "normalization_type": "LN",
        "original_architecture": arch,
    }


def _rope(params: dict[str, Any], arch: str) -> tuple[float, float]:
    """(theta, linear scaling factor) of one rope parameter set; other rope types are refused."""
    kind = params.get("rope_type", "default")
    if kind not in ("default", "linear"):
        raise UserError(f"{arch} with {kind!r} RoPE scaling is not supported for local loading (default or linear)")
    return float(params.get("rope_theta", 10000.0)), float(params.get("factor", 1.0)) if kind == "linear" else 1.0


def _gemma_config(c: Any, arch: str) -> dict[str, Any]:
    """Gemma 1, 2 and 3 (text) from the HF config: what TransformerLens's name-keyed Gemma configs
    hold, with widths, rope bases, window and layer pattern read from the file instead."""
    version = 3 if c.model_type.startswith("gemma3") else 2 if c.model_type.startswith("gemma2") else 1
    rope = getattr(c, "rope_parameters", None) or {}
    # Gemma 3 keeps one rope per attention type (global layers: base 1e6, scaled on the larger
    # models; local layers: base 1e4); Gemma 1 and 2 one for all layers.
    per_type = "full_attention" in rope
    theta, factor = _rope(rope["full_attention"] if per_type else rope, arch)
    fields: dict[str, Any] = {
        "d_model": c.hidden_size,
        "d_head": c.head_dim,
        "n_heads": c.num_attention_heads,
        "d_mlp": c.intermediate_size,
        "n_layers": c.num_hidden_layers,
        "n_ctx": min(c.max_position_embeddings, MAX_CTX),
        "eps": c.rms_norm_eps,
        "d_vocab": c.vocab_size,
        "act_fn": getattr(c, "hidden_activation", None) or c.hidden_act,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_adjacent_pairs": False,
        "rotary_dim": c.head_dim,
        "rotary_base": theta,
        # the weight converter needs it set even where every head has its own keys
        "n_key_value_heads": c.num_key_value_heads,
        "use_attn_scale": True,
        "attn_scale": math.sqrt(getattr(c, "query_pre_attn_scalar", None) or c.head_dim),
        "gated_mlp": True,
        "final_rms": True,
        "use_normalization_before_and_after": version >= 2,
        "original_architecture": arch,
    }
    if per_type:
        fields["rotary_base_local"], _ = _rope(rope["sliding_attention"], arch)
    if factor != 1.0:
        fields["rotary_scaling_factor"] = factor
    if version >= 3:
        fields["use_qk_norm"] = True
    layer_types = getattr(c, "layer_types", None)
    if version >= 2 and layer_types and getattr(c, "sliding_window", None):
        fields["use_local_attn"] = True
        fields["window_size"] = c.sliding_window
        fields["attn_types"] = ["local" if t == "sliding_attention" else "global" for t in layer_types]
    if getattr(c, "attn_logit_softcapping", None):
        fields["attn_scores_soft_cap"] = float(c.attn_logit_softcapping)
    if getattr(c, "final_logit_softcapping", None):
        fields["output_logits_soft_cap"] = float(c.final_logit_softcapping)
    return fields


def _transformer_lens_config(c: Any, arch: str) -> dict[str, Any]:
    """TransformerLens's own reading of an HF config. `convert_hf_model_config` takes a hub name or a
    folder holding config.json, so the config is written to a scratch folder first."""
    import tempfile
    from pathlib import Path

    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    with tempfile.TemporaryDirectory(prefix="interp-hf-config-") as tmp:
        # TransformerLens picks some architectures by a substring of the name it is given
        if any(word in tmp.lower() for word in ("llama", "gemma")):
            raise UserError(f"the temporary folder {tmp} names a model family; set TMPDIR to another folder")
        config = c.to_dict()
        config["architectures"] = [arch]  # None on a config built in code or read from GGUF
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        fields = dict(convert_hf_model_config(tmp))
    for key in ("tokenizer_name", "quantization_method", "trust_remote_code"):  # the scratch folder is gone
        fields.pop(key, None)
    fields["n_ctx"] = min(int(fields["n_ctx"]), MAX_CTX)
    return fields


ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": Architecture(_llama_config, "convert_llama_weights"),
    "GPT2LMHeadModel": Architecture(_gpt2_config, "convert_gpt2_weights"),
    "GemmaForCausalLM": Architecture(_gemma_config, "convert_gemma_weights"),
    "Gemma2ForCausalLM": Architecture(_gemma_config, "convert_gemma_weights"),
    "Gemma3ForCausalLM": Architecture(_gemma_config, "convert_gemma_weights"),
    "MistralForCausalLM": Architecture(_transformer_lens_config, "convert_mistral_weights"),
    "Qwen2ForCausalLM": Architecture(_transformer_lens_config, "convert_qwen2_weights"),
    "Qwen3ForCausalLM": Architecture(_transformer_lens_config, "convert_qwen3_weights"),
    "Phi3ForCausalLM": Architecture(_transformer_lens_config, "convert_phi3_weights"),
    "GPTNeoXForCausalLM": Architecture(_transformer_lens_config, "convert_neox_weights"),
    "OPTForCausalLM": Architecture(_transformer_lens_config, "convert_opt_weights"),
}
"""Every architecture that loads from a local file; tests/integration/test_architectures.py checks
each one's logits against transformers on a small random model."""


def architecture_of(hf_model: Any) -> tuple[str, Architecture]:
    """The architecture of a transformers model and how to convert it; a UserError naming the
    supported ones otherwise."""
    arch = str((hf_model.config.architectures or [type(hf_model).__name__])[0])
    if arch not in ARCHITECTURES:
        raise UserError(
            f"architecture {arch} is not supported for local loading; supported: {', '.join(ARCHITECTURES)}. "
            "Convert the model to one of them, or load it by its TransformerLens name if it has one"
        )
    return arch, ARCHITECTURES[arch]
