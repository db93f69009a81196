"""Component questions: a head's attention roles and ablation; a feature's contexts and ablation."""

from __future__ import annotations

from agent.brains.lines.ctx import Action, Criterion, Ctx
from agent.brains.lines.features import feature_steps
from agent.brains.lines.induction import repeated
from tools.ablate import AblateInput, Head
from tools.attention import AttentionInput, AttentionResult
from tools.corpus import CorpusSpec
from tools.metrics import Metric
from tools.predict import PredictInput, PredictResult
from tools.sae import SaeContextsInput, SaeContextsResult

HEAD_MATTERS = Criterion("ablate", (("effect", "<=", -0.2), ("margin", ">=", 0.15)))
"""Ablating the head changes >= 20% of the model's answers, 0.15 more than random heads."""


def component(c: Ctx) -> list[Action] | None:
    comp = c.view.question["component"] or {}
    if comp.get("head") is not None:
        prompts = c.prompts or repeated(c)
        if not prompts:
            return None
        layer, head = comp["layer"], comp["head"]
        label = f"L{layer}H{head}"
        if not c.started("component/attention"):
            return [c.call("component/attention", c.build(AttentionInput, prompts=prompts, top=100))]
        if not c.started("component/predict"):
            return [c.call("component/predict", c.build(PredictInput, prompts=prompts))]
        att, pred = c.result("component/attention", AttentionResult), c.result("component/predict", PredictResult)
        if att is None or pred is None:
            return None
        me = next((h for h in att.heads if h.layer == layer and h.head == head), None)
        if me is None:
            return None
        scores = {"previous_token": me.previous_token, "induction": me.induction, "first_token": me.first_token}
        role = max(scores, key=lambda k: scores[k])
        ref = f"component/h/{label}"
        if not c.started(ref):
            return [
                c.hypothesize(
                    ref,
                    f"Head {label} (mostly a {role.replace('_', '-')} head: score {scores[role]:.2f}) matters for the "
                    "model's predictions on these prompts: ablating it changes them more than ablating random heads",
                    "head",
                    {"hook": f"blocks.{layer}.attn.hook_z", "layer": layer, "head": head},
                    c.build(
                        AblateInput,
                        prompts=prompts,
                        metric=Metric(kind="rate", tokens=[p.argmax for p in pred.predictions]),
                        components=[Head(layer=layer, head=head)],
                        n_random=5,
                        seed=c.seed,
                    ),
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
                    c.build(SaeContextsInput, sae=sae, features=[fid], corpus=CorpusSpec(prompts=prompts), k=30),
                )
            ]
        ctxs = c.result("component/contexts", SaeContextsResult)
        if ctxs is None:
            return None
        hook = str(c.view.state.get("sae_hook", ""))
        return feature_steps(c, "component", sae, hook, prompts, ctxs.features)
    return None
