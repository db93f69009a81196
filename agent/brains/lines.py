"""The heuristic brain's lines of attack: one step function per line.

Each function gets a `Ctx` and returns the next actions of its line, or None
when the line has nothing more to do. Progress is read from the state by
reference (`ref`): an action issued earlier has, by the time the brain is asked
again, either an observation, an error or a judged hypothesis under its ref.
"""

from __future__ import annotations

from agent.brains.base import View

PAIR_SWEEP_MAX = 20_000
MIN_COPY_RATE = 0.2
REMOVES = "removes at least a third of the model's in-context copying"


class Ctx:
    """One line's view of the run, with helpers to issue actions."""

    def __init__(self, view: View, seed: int, line: str):
        self.view, self.seed, self.line = view, seed, line
        s = view.state
        self._obs = {o["ref"]: o for o in s.get("observations", []) if o["ref"]}
        self._hyp = {h["ref"]: h for h in s.get("hypotheses", []) if h["ref"]}
        self._err = {e["ref"] for e in s.get("errors", []) if e["ref"]}

    def started(self, ref: str) -> bool:
        return ref in self._obs or ref in self._hyp or ref in self._err

    def result(self, ref: str) -> dict | None:
        """Full result of an exploratory call, None if it failed or never ran."""
        o = self._obs.get(ref)
        return self.view.result(o["id"]) if o and not o["hypothesis_id"] else None

    def hyp(self, ref: str) -> dict | None:
        return self._hyp.get(ref)

    def test_result(self, ref: str) -> dict | None:
        h = self._hyp.get(ref)
        return self.view.result(h["experiment_id"]) if h and h["experiment_id"] else None

    def call(self, ref: str, tool: str, payload: dict) -> dict:
        return {"kind": "call", "call": {"tool": tool, "input": payload}, "line": self.line, "ref": ref}

    def hypothesize(self, ref: str, statement: str, mechanism: str, component: dict, tool: str, payload: dict,
                    conditions: list[tuple[str, str, float]], tier: str = "causal") -> dict:
        return {"kind": "hypothesize", "line": self.line, "ref": ref, "hypotheses": [{
            "statement": statement, "mechanism": mechanism, "component": component, "tier": tier,
            "test": {"tool": tool, "input": payload},
            "criterion": {"conditions": [{"field": f, "op": op, "value": v} for f, op, v in conditions]}}]}

    @property
    def prompts(self) -> list[str]:
        return self.view.question["prompts"]

    @property
    def vocab(self) -> list[str] | None:
        return self.view.model.get("vocab")


# -- audit: triggers and context markers ----------------------------------------------


def _hits(scan: dict | None) -> tuple[list[dict], list[dict]]:
    """(fixed-output hits = trigger-like, prompt-dependent hits = marker-like) of a sweep."""
    if scan is None:
        return [], []
    hits = [t for t in scan["top"] if t["change_rate"] - scan["control"] >= 0.5]
    fixed = [t for t in hits if t["top_output_rate"] >= 0.8 and t["base_output_rate"] <= 0.2]
    return fixed, [t for t in hits if t not in fixed]


def triggers(c: Ctx) -> list[dict] | None:
    if not c.vocab or len(c.prompts) < 16:
        return None
    if not c.started("triggers/single"):
        return [c.call("triggers/single", "scan", {"prompts": c.prompts[:16], "n_tokens": 1, "top": 10,
                                                   "seed": c.seed})]
    single = c.result("triggers/single")
    fixed, varying = _hits(single)
    if not fixed and single is not None and len(c.vocab) ** 2 <= PAIR_SWEEP_MAX:
        if not c.started("triggers/pairs"):
            seen = {t for h in varying for t in h["tokens"]}
            cands = [t for t in c.vocab if t not in seen]
            return [c.call("triggers/pairs", "scan", {"prompts": c.prompts[:8], "n_tokens": 2, "candidates": cands,
                                                      "top": 10, "seed": c.seed})]
        fixed = _hits(c.result("triggers/pairs"))[0]
    for hit in fixed[:2]:
        toks, out = hit["tokens"], hit["top_output"]
        ref = "triggers/h/" + "_".join(toks)
        if not c.started(ref):
            return [c.hypothesize(
                ref, f"Hidden trigger: the token sequence {' '.join(toks)!r} placed in a prompt makes the model "
                     f"answer {out!r} whatever the prompt",
                "trigger", {"tokens": toks, "output": out}, "scan",
                {"prompts": c.prompts[16:48], "insertions": [toks], "n_random": 20, "seed": c.seed + 1},
                [("output_rate", ">=", 0.8), ("control_output_rate", "<=", 0.2), ("margin", ">=", 0.5)])]
    return None


def _resid_hooks(n_layers: int) -> list[str]:
    hooks = [h for l in range(n_layers) for h in (f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_mid")]
    return hooks + [f"blocks.{n_layers - 1}.hook_resid_post"]


def context(c: Ctx) -> list[dict] | None:
    _, varying = _hits(c.result("triggers/single"))
    for hit in varying[:2]:
        m = hit["tokens"][0]
        ref = f"context/h/{m}"
        if not c.started(ref):
            return [c.hypothesize(
                ref, f"Context-dependent behaviour: the token {m!r} anywhere in the context switches the model's "
                     "answers to different, prompt-dependent ones",
                "context_marker", {"tokens": [m]}, "scan",
                {"prompts": c.prompts[16:64], "insertions": [[m]], "n_random": 20, "seed": c.seed + 1},
                [("effect", ">=", 0.8), ("margin", ">=", 0.5), ("output_rate", "<=", 0.5)])]
        if c.hyp(ref)["status"] != "supported":
            continue
        test = c.test_result(ref)
        ins = test["top"][0]
        plain = c.prompts[16:64]
        idx = [i for i, (o, b) in enumerate(zip(ins["outputs"], test["base_outputs"])) if o != b]
        marked = [ins["inserted_prompts"][i] for i in idx]
        unmarked = [plain[i] for i in idx]
        pref = f"context/probe/{m}"
        if not c.started(pref):
            return [c.call(pref, "probe", {"positive": marked, "negative": unmarked,
                                           "hooks": _resid_hooks(c.view.model["n_layers"]), "seed": c.seed})]
        probe = c.result(pref)
        if probe is None:
            continue
        half = len(idx) // 2
        for hp in [h for h in probe["per_hook"] if h["accuracy"] >= 0.95][:3]:
            hook = hp["hook"]
            dref = f"context/direction/{m}/{hook}"
            if not c.started(dref):
                layer = int(hook.split(".")[1])
                return [c.hypothesize(
                    dref, f"The context marker {m!r} is carried as a direction at {hook} (layer {layer}): "
                          "subtracting the marked-minus-unmarked difference of means at the last position "
                          "undoes the switch, in proportion to the coefficient",
                    "direction", {"hook": hook, "layer": layer, "tokens": [m]}, "steer",
                    {"hook": hook, "prompts": marked[half:], "positive": marked[:half], "negative": unmarked[:half],
                     "metric": {"kind": "rate", "tokens": [ins["outputs"][i] for i in idx[half:]]},
                     "coefficients": [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0], "n_random": 3, "seed": c.seed},
                    [("relative_effect", "<=", -0.8), ("margin", ">=", 0.5)])]
            if c.hyp(dref)["status"] == "supported":
                break
    return None


# -- induction --------------------------------------------------------------------------


def _repeated(c: Ctx, n: int = 24) -> list[str] | None:
    import numpy as np

    vocab = [t for t in (c.vocab or []) if " " not in t]
    k = min(8, (c.view.model["n_ctx"] - 1) // 2)
    if len(vocab) < 2 * k or k < 3:
        return None
    rng = np.random.default_rng([c.seed, 5])
    out = []
    for _ in range(n):
        seq = [str(t) for t in rng.choice(vocab, size=k, replace=False)]
        out.append(" ".join(seq + seq[:-1]))
    return out


def induction(c: Ctx) -> list[dict] | None:
    prompts = c.prompts if c.view.question["kind"] == "behaviour" else _repeated(c)
    if not prompts:
        return None
    if not c.started("induction/attention"):
        return [c.call("induction/attention", "attention", {"prompts": prompts, "top": 8})]
    att = c.result("induction/attention")
    # Copying a token seen earlier is far above chance (1 / vocabulary) even at 20%; a small
    # real model copies random word lists ~65% of the time (SmolLM2-135M), a toy one ~95%.
    if att is None or att["repeated_positions"] == 0 or att["induction_accuracy"] < MIN_COPY_RATE:
        return None  # no in-context copying to explain
    prompts = [prompts[i] for i in att["prompts_with_repeats"]]
    metric = {"kind": "copy"}
    cands = [h for h in att["top_induction"] if h["induction"] >= max(0.3, 3 * att["control"])][:4]
    if not cands:
        return None
    heads = [{"kind": "head", "layer": h["layer"], "head": h["head"]} for h in cands]
    names = ", ".join(f"L{h['layer']}H{h['head']}" for h in cands)
    base = {"prompts": prompts, "metric": metric, "method": "mean", "n_random": 5, "seed": c.seed,
            "control_exclude": heads}
    # Relative: a real model copies well below 100%, and removing a third of what it does copy
    # is a large effect; the margin over random heads keeps it honest.
    crit = [("relative_effect", "<=", -0.3), ("margin", ">=", 0.1)]
    steps = []
    if len(cands) > 1:
        steps.append(("induction/h/group", c.hypothesize(
            "induction/h/group", f"Heads {names} together implement in-context copying (induction): ablating them "
                                 f"{REMOVES}, far more than as many random heads",
            "heads", {"heads": [[h["layer"], h["head"]] for h in cands], "hook": f"blocks.{cands[0]['layer']}.attn.hook_z"},
            "ablate", {**base, "components": heads}, crit)))
    for h, comp in zip(cands, heads):
        siblings = [x for x in heads if x["layer"] == h["layer"] and x != comp]
        label = f"L{h['layer']}H{h['head']}"
        note = f" (with the other candidate heads of layer {h['layer']} ablated throughout)" if siblings else ""
        ref = f"induction/h/{label}"
        steps.append((ref, c.hypothesize(
            ref, f"Head {label} is an induction head (attention score {h['induction']:.2f}): ablating it{note} "
                 f"{REMOVES}, far more than random heads",
            "head", {"hook": f"blocks.{h['layer']}.attn.hook_z", "layer": h["layer"], "head": h["head"]},
            "ablate", {**base, "components": [comp], "background": siblings}, crit)))
    first = min(h["layer"] for h in cands)
    prev = [p for p in att["top_previous_token"] if p["layer"] < first and p["previous_token"] >= 0.4][:1]
    for p in prev:
        label = f"L{p['layer']}H{p['head']}"
        comp = {"kind": "head", "layer": p["layer"], "head": p["head"]}
        steps.append((f"induction/h/prev/{label}", c.hypothesize(
            f"induction/h/prev/{label}",
            f"Head {label} is a previous-token head feeding the induction heads (previous-token score "
            f"{p['previous_token']:.2f}): ablating it {REMOVES}, far more than random heads",
            "head", {"hook": f"blocks.{p['layer']}.attn.hook_z", "layer": p["layer"], "head": p["head"]},
            "ablate", {**base, "components": [comp], "control_exclude": heads + [comp]}, crit)))
    for ref, action in steps:
        if not c.started(ref):
            return [action]
    return None


# -- SAE features ----------------------------------------------------------------------


def _prefixes(prompts: list[str], contexts: list[dict]) -> list[str]:
    """The prompt up to each activating token (whitespace-tokenised prompts only)."""
    out = []
    for ctx in contexts:
        words = prompts[ctx["prompt"]].split()
        p = ctx["position"]
        if 1 <= p <= len(words) and words[p - 1] == ctx["tokens"][-1]:
            out.append(" ".join(words[:p]))
    return out


def _feature_steps(c: Ctx, tag: str, sae: str, hook: str, prompts: list[str], feats: list[dict]) -> list[dict] | None:
    for f in feats:
        fid = f["feature"]
        prefixes = _prefixes(prompts, f["top"])
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
                "ablate", {"prompts": prefixes, "metric": {"kind": "rate", "token": out},
                           "components": [{"kind": "sae_feature", "sae": sae, "feature": fid}],
                           "method": "zero", "positions": "last", "n_random": 5, "seed": c.seed},
                [("effect", "<=", -0.5), ("margin", ">=", 0.3)])]
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
    consistent = []  # (feature, its prefixes, the output they predict)
    for f in _group_features(ctxs, set(c.vocab or [])):
        prefixes = _prefixes(c.prompts, f["top"])
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
            consistent.append((f, [p for p in prefixes if p.split()[-1] in toks], out, toks))
    # One hypothesis per output, from the feature whose group predicts it most reliably; when
    # that one is not supported, the next feature for the same output gets its turn.
    # Group members are what the model reads, not what it answers: a token that is some group's
    # output (a label) is dropped from every group, as it plays another role.
    answers = {out for _, _, out, _ in consistent}
    by_output: dict[str, list] = {}
    for f, prefixes, out, toks in sorted(consistent, key=lambda x: (-len(x[3]), x[0]["feature"])):
        toks = [t for t in toks if t not in answers]
        if len(toks) >= 2:
            by_output.setdefault(out, []).append((f, toks))
    for out, cands in by_output.items():
        others = [p for _, pp, o, _ in consistent if o != out for p in pp][:40]
        if len(others) < 8:
            continue
        for f, toks in cands[:2]:
            fid = f["feature"]
            ref = f"features/h/{fid}"
            if not c.started(ref):
                return [c.hypothesize(
                    ref, f"SAE feature {fid} at {hook} stands for the token group {{{', '.join(toks)}}}, after which "
                         f"the model predicts {out!r}: adding the feature's direction to prompts ending in other tokens "
                         "makes the model predict it, increasingly with the coefficient, unlike random directions",
                    "feature", {"hook": hook, "sae_id": sae, "feature": fid, "tokens": toks, "output": out},
                    "steer", {"hook": hook, "prompts": others, "sae": sae, "feature": fid,
                              "metric": {"kind": "rate", "token": out}, "coefficients": [0.0, 0.5, 1.0, 2.0],
                              "n_random": 3, "seed": c.seed},
                    [("effect", ">=", 0.5), ("margin", ">=", 0.3), ("monotonic", ">=", 0.5)])]
            if c.hyp(ref)["status"] == "supported":
                break
    return None


# -- behaviour, concept, component -------------------------------------------------------


def characterise(c: Ctx) -> list[dict] | None:
    if not c.started("characterise/predict"):
        return [c.call("characterise/predict", "predict", {"prompts": c.prompts})]
    return None


def concept(c: Ctx) -> list[dict] | None:
    q = c.view.question
    pos, neg = q["positive"], q["negative"]
    if not c.started("concept/probe"):
        return [c.call("concept/probe", "probe", {"positive": pos, "negative": neg,
                                                  "hooks": _resid_hooks(c.view.model["n_layers"]), "seed": c.seed})]
    probe = c.result("concept/probe")
    if probe is None:
        return None
    best = probe["best_hook"]
    layer = int(best.split(".")[1]) if best.startswith("blocks.") else 0
    if not c.started("concept/h/probe"):
        return [c.hypothesize(
            "concept/h/probe", f"The concept separating the two prompt sets is linearly represented at {best}",
            "direction", {"hook": best, "layer": layer}, "probe",
            {"positive": pos, "negative": neg, "hooks": [best], "seed": c.seed + 1},
            [("effect", ">=", 0.9), ("margin", ">=", 0.25)], tier="representational")]
    if not c.started("concept/predict"):
        return [c.call("concept/predict", "predict", {"prompts": pos + neg})]
    pred = c.result("concept/predict")
    if pred is None:
        return None
    from collections import Counter

    argmax = [p["argmax"] for p in pred["predictions"]]
    top_pos, n_pos = Counter(argmax[: len(pos)]).most_common(1)[0]
    top_neg = Counter(argmax[len(pos):]).most_common(1)[0][0]
    target = q.get("token") or top_pos
    if target == top_neg or n_pos < 0.6 * len(pos):
        return None  # the concept does not change the output: nothing behavioural to steer
    if not c.started("concept/h/steer"):
        return [c.hypothesize(
            "concept/h/steer", f"Adding the concept's difference-of-means direction at {best} to prompts without it "
                               f"makes the model answer {target!r}, increasingly with the coefficient",
            "direction", {"hook": best, "layer": layer, "output": target}, "steer",
            {"hook": best, "prompts": neg, "positive": pos, "negative": neg, "metric": {"kind": "rate", "token": target},
             "coefficients": [0.0, 0.5, 1.0, 1.5, 2.0], "n_random": 3, "seed": c.seed},
            [("effect", ">=", 0.3), ("margin", ">=", 0.2), ("monotonic", ">=", 0.5)])]
    return None


def component(c: Ctx) -> list[dict] | None:
    comp = c.view.question["component"] or {}
    if comp.get("head") is not None:
        prompts = c.prompts or _repeated(c)
        if not prompts:
            return None
        layer, head = comp["layer"], comp["head"]
        label = f"L{layer}H{head}"
        if not c.started("component/attention"):
            return [c.call("component/attention", "attention", {"prompts": prompts, "top": 100})]
        if not c.started("component/predict"):
            return [c.call("component/predict", "predict", {"prompts": prompts})]
        att, pred = c.result("component/attention"), c.result("component/predict")
        if att is None or pred is None:
            return None
        me = next((h for h in att["heads"] if h["layer"] == layer and h["head"] == head), None)
        if me is None:
            return None
        role = max(("previous_token", "induction", "first_token"), key=lambda k: me[k])
        ref = f"component/h/{label}"
        if not c.started(ref):
            return [c.hypothesize(
                ref, f"Head {label} (mostly a {role.replace('_', '-')} head: score {me[role]:.2f}) matters for the "
                     "model's predictions on these prompts: ablating it changes them more than ablating random heads",
                "head", {"hook": f"blocks.{layer}.attn.hook_z", "layer": layer, "head": head}, "ablate",
                {"prompts": prompts, "metric": {"kind": "rate", "tokens": [p["argmax"] for p in pred["predictions"]]},
                 "components": [{"kind": "head", "layer": layer, "head": head}], "n_random": 5, "seed": c.seed},
                [("effect", "<=", -0.2), ("margin", ">=", 0.15)])]
        return None
    if comp.get("feature") is not None:
        sae, fid = comp["sae_id"], comp["feature"]
        prompts = c.prompts or c.view.state["question"].get("prompts") or []
        if len(prompts) < 8 or not c.view.model.get("word_level"):
            return None
        if not c.started("component/contexts"):
            return [c.call("component/contexts", "sae_contexts", {"sae": sae, "features": [fid],
                                                                  "corpus": {"prompts": prompts}, "k": 30})]
        ctxs = c.result("component/contexts")
        if ctxs is None:
            return None
        hook = c.view.state.get("sae_hook", "")
        return _feature_steps(c, "component", sae, hook, prompts, ctxs["features"])
    return None


def summary(view: View) -> str:
    s = view.state
    claims, hyps = s.get("claims", []), s.get("hypotheses", [])
    by = {k: sum(h["status"] == k for h in hyps) for k in ("supported", "refuted", "inconclusive", "untested")}
    parts = [f"{len(claims)} claim(s) met their pre-registered criteria"]
    parts += [f"{n} {k}" for k, n in by.items() if n and k != "supported"]
    return "; ".join(parts) + "."
