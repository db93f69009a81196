"""Component questions: a head's attention roles and ablation; a feature's contexts and ablation."""

from __future__ import annotations

from agent.brains.lines.ctx import Criterion, Ctx
from agent.brains.lines.features import feature_steps
from agent.brains.lines.induction import repeated

HEAD_MATTERS = Criterion("ablate", (("effect", "<=", -0.2), ("margin", ">=", 0.15)))
"""Ablating the head changes >= 20% of the model's answers, 0.15 more than random heads."""


def component(c: Ctx) -> list[dict] | None:
    comp = c.view.question["component"] or {}
    if comp.get("head") is not None:
        prompts = c.prompts or repeated(c)
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
            return [
                c.hypothesize(
                    ref,
                    f"Head {label} (mostly a {role.replace('_', '-')} head: score {me[role]:.2f}) matters for the "
                    "model's predictions on these prompts: ablating it changes them more than ablating random heads",
                    "head",
                    {"hook": f"blocks.{layer}.attn.hook_z", "layer": layer, "head": head},
                    {
                        "prompts": prompts,
                        "metric": {"kind": "rate", "tokens": [p["argmax"] for p in pred["predictions"]]},
                        "components": [{"kind": "head", "layer": layer, "head": head}],
                        "n_random": 5,
                        "seed": c.seed,
                    },
                    HEAD_MATTERS,
                )
            ]
        return None
    if comp.get("feature") is not None:
        sae, fid = comp["sae_id"], comp["feature"]
        prompts = c.prompts or c.view.state["question"].get("prompts") or []
        if len(prompts) < 8 or not c.view.model.get("word_level"):
            return None
        if not c.started("component/contexts"):
            return [
                c.call(
                    "component/contexts",
                    "sae_contexts",
                    {"sae": sae, "features": [fid], "corpus": {"prompts": prompts}, "k": 30},
                )
            ]
        ctxs = c.result("component/contexts")
        if ctxs is None:
            return None
        hook = str(c.view.state.get("sae_hook", ""))
        return feature_steps(c, "component", sae, hook, prompts, ctxs["features"])
    return None
