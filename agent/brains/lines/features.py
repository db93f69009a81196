"""SAE features for hypothesis generation: features on token groups that predict one output,
tested by steering (audits) or ablation (a feature question)."""

from __future__ import annotations

from agent.brains.lines.ctx import Criterion, Ctx

FEATURE_ABLATION = Criterion("ablate", (("effect", "<=", -0.5), ("margin", ">=", 0.3)))
"""Zero-ablating the feature removes >= half of the prediction, 0.3 more than random features."""
FEATURE_STEERING = Criterion("steer", (("effect", ">=", 0.5), ("margin", ">=", 0.3), ("monotonic", ">=", 0.5)))
"""Adding the feature's direction makes the output >= 50% likelier, monotonically, unlike random directions."""

ON_TOPIC_AGREEMENT = 0.5
"""A token group's prediction answers the question when, in the prompts (the model's ordinary inputs), the
token that follows the group's positions is the predicted one at least this share of the time. Below it the
model predicts there what its inputs never continue with: positions it is not used for (a lookup model's
mid-prompt tokens, trained only at `<q>`), so a feature explaining it is an incidental finding. Positions
that end a prompt have no continuation to compare and are left out (they are where the question is asked)."""


def prefixes_with_next(prompts: list[str], contexts: list[dict]) -> list[tuple[str, str | None]]:
    """(the prompt up to each activating token, the prompt's next token or None at its end);
    whitespace-tokenised prompts only."""
    out = []
    for ctx in contexts:
        words = prompts[ctx["prompt"]].split()
        p = ctx["position"]
        if 1 <= p <= len(words) and words[p - 1] == ctx["tokens"][-1]:
            out.append((" ".join(words[:p]), words[p] if p < len(words) else None))
    return out


def prefixes_of(prompts: list[str], contexts: list[dict]) -> list[str]:
    """The prompt up to each activating token (whitespace-tokenised prompts only)."""
    return [p for p, _ in prefixes_with_next(prompts, contexts)]


def why_incidental(pairs: list[tuple[str, str | None]], toks: list[str], out: str) -> str:
    """Why predicting `out` after the group `toks` is incidental to the question ('' when it is not):
    see ON_TOPIC_AGREEMENT. Uses only the prompts, never what the model was trained on."""
    nexts = [n for p, n in pairs if p.split()[-1] in toks and n is not None]
    if not nexts:
        return ""
    share = sum(n == out for n in nexts) / len(nexts)
    if share >= ON_TOPIC_AGREEMENT:
        return ""
    return (f"in the prompts, {out!r} follows these tokens at {share:.0%} of {len(nexts)} positions (an answer "
            f"needs {ON_TOPIC_AGREEMENT:.0%}): the model predicts it where its ordinary inputs go on otherwise, "
            "so it explains no behaviour the question is about")


def feature_steps(c: Ctx, tag: str, sae: str, hook: str, prompts: list[str], feats: list[dict]) -> list[dict] | None:
    for f in feats:
        fid = f["feature"]
        prefixes = prefixes_of(prompts, f["top"])
        if len(prefixes) < 8:
            continue
        pref = f"{tag}/predict/{fid}"
        if not c.started(pref):
            return [c.call(pref, "predict", {"prompts": prefixes})]
        pred = c.result(pref)
        if pred is None or pred["most_common"][0][1] < 0.8:
            continue
        out = pred["most_common"][0][0]
        toks = [t for t, _ in f["top_tokens"][:5]]
        ref = f"{tag}/h/{fid}"
        if not c.started(ref):
            return [c.hypothesize(
                ref, f"SAE feature {fid} at {hook} (active on {', '.join(toks)}) carries what the model needs to "
                     f"predict {out!r} after those tokens: ablating it removes that prediction, far more than "
                     "ablating random features",
                "feature", {"hook": hook, "sae_id": sae, "feature": fid, "tokens": toks, "output": out},
                {"prompts": prefixes, "metric": {"kind": "rate", "token": out},
                           "components": [{"kind": "sae_feature", "sae": sae, "feature": fid}],
                           "method": "zero", "positions": "last", "n_random": 5, "seed": c.seed}, FEATURE_ABLATION)]
    return None


def _group_features(ctxs: dict, vocab: set[str], limit: int = 24) -> list[dict]:
    """Features active on a group of ordinary tokens (two or more), the widest groups first."""
    good = [f for f in ctxs["features"] if len(f["top"]) >= 20 and f["density"] <= 0.4 and len(f["top_tokens"]) >= 2
            and all(t in vocab for t, _ in f["top_tokens"])]
    return sorted(good, key=lambda f: (-len(f["top_tokens"]), f["feature"]))[:limit]


def features(c: Ctx) -> list[dict] | None:
    """SAEs for hypothesis generation: features on token groups that predict one output, tested by steering."""
    m = c.view.model
    if not m.get("word_level") or len(c.prompts) < 32:
        return None
    hook = f"blocks.{m['n_layers'] // 2}.hook_resid_pre" if m["n_layers"] > 1 else "blocks.0.hook_resid_post"
    sae = f"sae/{hook}"  # a relative path: the graph places it in the run's artifacts folder
    d_sae = 2 * m["d_model"]
    if not c.started("features/sae"):
        return [c.call("features/sae", "sae_train", {"hook": hook, "corpus": {"prompts": c.prompts}, "out": sae,
                                                     "d_sae": d_sae, "k": 4, "steps": 600, "batch_size": 256,
                                                     "seed": c.seed})]
    if c.result("features/sae") is None:
        return None
    if not c.started("features/contexts"):
        return [c.call("features/contexts", "sae_contexts", {"sae": sae, "features": list(range(d_sae)),
                                                             "corpus": {"prompts": c.prompts}, "k": 40, "window": 0})]
    ctxs = c.result("features/contexts")
    if ctxs is None:
        return None
    consistent = []  # (feature, its group's prefixes, the output they predict, the group, every (prefix, next))
    for f in _group_features(ctxs, set(c.vocab or [])):
        pairs = prefixes_with_next(c.prompts, f["top"])
        prefixes = [p for p, _ in pairs]
        if len(prefixes) < 8:
            continue
        ref = f"features/predict/{f['feature']}"
        if not c.started(ref):
            return [c.call(ref, "predict", {"prompts": prefixes})]
        pred = c.result(ref)
        if pred is not None and pred["most_common"][0][1] >= 0.8:
            out = pred["most_common"][0][0]
            # The group is the tokens after which the model reliably predicts `out` (twice or more,
            # 80% of the time): a feature's weaker contexts spill onto tokens that do not belong.
            last = [p.split()[-1] for p in prefixes]
            hits = [t for t, q in zip(last, pred["predictions"]) if q["argmax"] == out]
            toks = sorted({t for t in hits if hits.count(t) >= 2 and hits.count(t) >= 0.8 * last.count(t) and t != out},
                          key=lambda t: (-hits.count(t), t))
            if len(toks) < 2:
                continue
            consistent.append((f, [p for p in prefixes if p.split()[-1] in toks], out, toks, pairs))
    # One hypothesis per output, from the feature whose group predicts it most reliably; when
    # that one is not supported, the next feature for the same output gets its turn.
    # Group members are what the model reads, not what it answers: a token that is some group's
    # output (a label) is dropped from every group, as it plays another role.
    answers = {out for _, _, out, _, _ in consistent}
    by_output: dict[str, list] = {}
    for f, _, out, toks, pairs in sorted(consistent, key=lambda x: (-len(x[3]), x[0]["feature"])):
        toks = [t for t in toks if t not in answers]
        if len(toks) >= 2:
            by_output.setdefault(out, []).append((f, toks, pairs))
    for out, cands in by_output.items():
        others = [p for _, pp, o, _, _ in consistent if o != out for p in pp][:40]
        if len(others) < 8:
            continue
        for f, toks, pairs in cands[:2]:
            fid = f["feature"]
            ref = f"features/h/{fid}"
            if not c.started(ref):
                return [c.hypothesize(
                    ref, f"SAE feature {fid} at {hook} stands for the token group {{{', '.join(toks)}}}, after which "
                         f"the model predicts {out!r}: adding the feature's direction to prompts ending in other tokens "
                         "makes the model predict it, increasingly with the coefficient, unlike random directions",
                    "feature", {"hook": hook, "sae_id": sae, "feature": fid, "tokens": toks, "output": out},
                    {"hook": hook, "prompts": others, "sae": sae, "feature": fid,
                              "metric": {"kind": "rate", "token": out}, "coefficients": [0.0, 0.5, 1.0, 2.0],
                              "n_random": 3, "seed": c.seed}, FEATURE_STEERING, why_incidental(pairs, toks, out))]
            if c.hyp(ref)["status"] == "supported":
                break
    return None
