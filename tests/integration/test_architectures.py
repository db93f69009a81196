"""Every architecture that loads from a local file converts to a HookedTransformer whose logits are
transformers' own: small random models of each, with weights (norms included) pushed off their
initial values, sequences longer than the sliding windows, float32."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tools.architectures import ARCHITECTURES, architecture_of
from tools.checkpoint import word_level_tokenizer
from tools.errors import UserError
from tools.target import hooked_from_hf

VOCAB = 48
SEQ = 12  # > every sliding window below: local layers must mask what global ones see
COMMON = {"vocab_size": VOCAB, "num_hidden_layers": 3, "num_attention_heads": 4, "max_position_embeddings": 64}
ROPE = {"hidden_size": 64, "intermediate_size": 96, **COMMON}


def _configs() -> dict[str, Any]:
    import transformers as tf

    sliding = ["sliding_attention", "full_attention", "sliding_attention"]
    return {
        "LlamaForCausalLM": tf.LlamaConfig(**ROPE, num_key_value_heads=2),
        "GPT2LMHeadModel": tf.GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=64),
        "GemmaForCausalLM": tf.GemmaConfig(**ROPE, num_key_value_heads=1, head_dim=16),
        "Gemma2ForCausalLM": tf.Gemma2Config(
            **ROPE,
            num_key_value_heads=2,
            head_dim=16,
            query_pre_attn_scalar=24,
            sliding_window=4,
            layer_types=sliding,
            attn_logit_softcapping=5.0,
            final_logit_softcapping=3.0,
        ),
        "Gemma3ForCausalLM": tf.Gemma3TextConfig(
            **ROPE,
            num_key_value_heads=1,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=4,
            layer_types=sliding,
            rope_parameters={
                "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
            },
        ),
        "MistralForCausalLM": tf.MistralConfig(**ROPE, num_key_value_heads=2, sliding_window=4),
        "Qwen2ForCausalLM": tf.Qwen2Config(**ROPE, num_key_value_heads=2),
        "Qwen3ForCausalLM": tf.Qwen3Config(**ROPE, num_key_value_heads=2, head_dim=16),
        "Phi3ForCausalLM": tf.Phi3Config(**ROPE, num_key_value_heads=4, pad_token_id=0),
        "GPTNeoXForCausalLM": tf.GPTNeoXConfig(**ROPE),
        "OPTForCausalLM": tf.OPTConfig(
            vocab_size=VOCAB,
            hidden_size=64,
            ffn_dim=96,
            num_hidden_layers=3,
            num_attention_heads=4,
            max_position_embeddings=64,
            word_embed_proj_dim=64,
        ),
    }


def test_every_registered_architecture_has_a_test_model():
    assert set(_configs()) == set(ARCHITECTURES)


def _random_model(arch: str) -> Any:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(_configs()[arch], attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():  # off the initial values: unit norms and zero biases would hide a converter's mistakes
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return hf.eval()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_converted_logits_match_transformers(arch, tmp_path):
    from transformers import PreTrainedTokenizerFast

    hf = _random_model(arch)
    assert architecture_of(hf)[0] == arch
    # saved and read back, as a loaded tokenizer is (TransformerLens re-creates it from its name_or_path)
    word_level_tokenizer(["<bos>", "<pad>", "<unk>"] + [f"t{i}" for i in range(VOCAB - 3)]).save_pretrained(tmp_path)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tmp_path))
    model = hooked_from_hf(hf, tokenizer, name=f"tiny-{arch}", device="cpu")
    tokens = torch.randint(3, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        theirs = hf(tokens).logits
        ours = model(tokens)
    assert ours.shape == theirs.shape
    assert theirs.std() > 0.1  # logits that carry signal, so the comparison means something
    assert (ours - theirs).abs().max().item() < 1e-4


def test_a_local_gemma3_folder_loads_as_hf_path(tmp_path):
    """`hf:PATH` as a user gives it: a folder written by save_pretrained, model and tokenizer."""
    from tools.target import load

    hf = _random_model("Gemma3ForCausalLM")
    hf.save_pretrained(tmp_path)
    word_level_tokenizer(["<bos>", "<pad>", "<unk>"] + [f"t{i}" for i in range(VOCAB - 3)]).save_pretrained(tmp_path)
    target = load(f"hf:{tmp_path}", device="cpu")
    assert target.source == "hf" and target.model.cfg.original_architecture == "Gemma3ForCausalLM"
    assert "blocks.1.attn.hook_pattern" in target.hook_names()
    tokens = target.model.to_tokens("t1 t2 t3 t4 t5 t6 t7 t8")
    with torch.inference_mode():
        assert (target.model(tokens) - hf(tokens).logits).abs().max().item() < 1e-4


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import FalconConfig, FalconForCausalLM

    falcon = FalconForCausalLM(
        FalconConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    with pytest.raises(UserError, match=r"FalconForCausalLM is not supported.*Gemma3ForCausalLM"):
        architecture_of(falcon)
