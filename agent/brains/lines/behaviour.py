"""Any behaviour question: characterise -> localise -> explain -> verify, whatever the behaviour.

Given prompts (and, when the question has them, each prompt's answer, the token it competes with, and
corrupted prompts without the behaviour):

    characterise  `predict` (the characterise line): what the model answers, how consistently. A
                  behaviour the model does not show reliably is not localised: noise has no circuit.
    localise      `attribute` over every head and MLP layer at once (one forward + backward pass; the
                  reference is the corrupted prompts when given, else each component's mean).
    explain       `heads` on the candidate heads: direct logit effect and the token roles they attend
                  to. It goes into the statements of the hypotheses below as context; it is not their test.
    verify        each candidate head mean-ablated against random heads (`ablate`), each candidate MLP
                  layer against random MLP layers (`circuit` of one), and the top heads as a circuit with
                  faithfulness and completeness against random sets of heads (`circuit`).

The metric is a logit difference on each prompt: the given answer minus the given versus token; without
versus tokens, the given answer (or else the model's own top answer) minus the model's strongest other
token there. Repeated-sequence prompts with no answers given are the
induction line's fast special case: when it has found supported induction heads, this line adds nothing.
"""

from __future__ import annotations

from typing import Literal

from agent.brains.lines.ctx import Criterion, Ctx
from tools.ablate import AblateInput, Head
from tools.attribute import AttributeInput, AttributeResult, Mlp, Score
from tools.circuit import CircuitInput, CircuitResult
from tools.heads import HeadExplanation, HeadsInput, HeadsResult
from tools.metrics import Metric
from tools.predict import PredictResult

Basis = Literal["versus", "answers", "own"]
"""What the metric rests on: given answers and versus tokens, given answers alone, or the model's own answers."""

MIN_ANSWER_RATE = 0.5
"""P(answer) metric: share of prompts whose top prediction is the given answer below which the model does
not show the behaviour asked about, and nothing is localised."""
MIN_OWN_PROB = 0.2
"""Own-answer metric: mean probability of the model's top answer below which its answers are too unsure to
be a behaviour worth localising."""
MIN_LOGIT_DIFF = 0.1
"""Logit-difference metric: mean logit[answer] - logit[versus] at or below which the model does not prefer
the answer, and nothing is localised."""
MAX_HEADS = 5
"""Candidate heads tested one by one (each test is 2 + N_RANDOM forward passes)."""
MAX_MLPS = 2
"""Candidate MLP layers tested one by one."""
HEAD_OVER_MEDIAN = 3.0
"""A head is a candidate when its estimated drop of the metric is at least this many times the median
head's |estimate| (what a typical head does)."""
MLP_MIN_SHARE = 0.05
"""An MLP layer is a candidate when its estimated drop is at least this share of |the metric|."""
CIRCUIT_SIZE = 10
"""Heads of the attribution ranking offered to `circuit` (its curve costs 2 forward passes per head)."""
CIRCUIT_TARGET = 0.8
"""Faithfulness at which `circuit` stops growing the prefix."""
MEASURE_ALL = 1.5
"""`circuit` target no prefix reaches: the held-out test measures the whole set found, not a prefix of it
(pruning only drops a head whose addition lowered faithfulness, and only if that keeps no less)."""
N_RANDOM = 8
"""Random components per control (ablate); the circuit tests draw N_RANDOM // 2 random sets."""

HEAD_CARRIES = Criterion("ablate", (("relative_effect", "<=", -0.1), ("z_score", "<=", -3.0)))
"""Mean-ablating the head removes >= 10% of the behaviour, and its change lies >= 3 spreads of the
random-head control below that control's mean."""
MLP_CARRIES = Criterion("circuit", (("completeness", "<=", 0.8), ("margin", ">=", 0.1)))
"""Mean-ablating the MLP layer leaves <= 80% of the behaviour (0 = every MLP layer ablated), and the layer
alone keeps 0.1 more of it than a random MLP layer alone."""
CIRCUIT_KEEPS = Criterion("circuit", (("faithfulness", ">=", 0.6), ("completeness", "<=", 0.5),
                                      ("margin", ">=", 0.3)))
"""With only the circuit's heads kept (every other head mean-ablated) >= 60% of the behaviour remains, with
them ablated <= 50%, and the circuit keeps 0.3 more than random sets of as many heads."""

ROLE_WORDS = {"answer": "the answer token", "distractor": "the competing token", "previous": "the previous token",
              "induction": "the token after an earlier copy of the current one",
              "duplicate": "an earlier copy of the current token", "bos": "the first token", "self": "itself",
              "other": "other tokens"}
"""How a `heads` attention role reads in a statement."""


def _q(c: Ctx, name: str) -> list[str]:
    # per-prompt targets arrive with the typed question; until every run carries them, absent means none
    return list(c.view.question.get(name) or [])


def target(c: Ctx, pred: PredictResult) -> tuple[Metric, str, Basis]:
    """(metric, the behaviour in words, what it rests on: the given answers and versus tokens, the given
    answers alone, or the model's own answers).

    Without a `versus` token the answer is compared with the model's strongest alternative on each prompt
    (the best other token of `predict`): a probability near 1 has almost no gradient, so attribution would
    see nothing, where a logit difference stays informative and is what ablations of it measure."""
    n = len(c.prompts)
    answers, versus = _q(c, "answers"), _q(c, "versus")
    token = c.view.question.get("token")
    if len(answers) == 1 and n > 1:
        answers = answers * n
    if len(versus) == 1 and n > 1:
        versus = versus * n
    if not answers and token:
        answers = [token] * n
    if answers and len(versus) == len(answers):
        same = len(set(answers)) == 1 and len(set(versus)) == 1
        words = (f"the preference for {answers[0]!r} over {versus[0]!r}" if same else
                 f"the preference for each prompt's answer over its alternative (e.g. {answers[0]!r} over {versus[0]!r})")
        return Metric(kind="logit_diff", tokens=answers, versus_tokens=versus), words, "versus"
    own = not answers
    basis: Basis = "own" if own else "answers"
    answers = answers or [p.argmax for p in pred.predictions]
    rivals = [next((t for t, _ in p.top if t != a), None) for p, a in zip(pred.predictions, answers)]
    if any(r is None for r in rivals):  # a vocabulary too small for a runner-up
        return Metric(kind="prob", tokens=answers), f"predicting {answers[0]!r}", basis
    what = ("the model's own answer on each prompt (its top prediction, e.g. {a!r}; no answer was given)" if own
            else "predicting {a!r}" if len(set(answers)) == 1 else "predicting each prompt's answer (e.g. {a!r})")
    words = what.format(a=answers[0]) + ", measured against its strongest alternative on each prompt"
    return Metric(kind="logit_diff", tokens=answers, versus_tokens=rivals), words, basis


def weak(metric: Metric, basis: Basis, pred: PredictResult, att: AttributeResult | None) -> bool:
    """The model does not show the behaviour reliably enough to localise it."""
    if basis == "own":
        return sum(p.top[0][1] for p in pred.predictions) / len(pred.predictions) < MIN_OWN_PROB
    if basis == "answers":
        hits = sum(p.argmax == t for p, t in zip(pred.predictions, metric.tokens or []))
        return hits / len(pred.predictions) < MIN_ANSWER_RATE
    return att is not None and att.clean_value <= MIN_LOGIT_DIFF


def _halves(n: int) -> tuple[list[int], list[int]]:
    """(search, held-out) prompt indices: alternate prompts, or all of them twice when there are too few."""
    if n < 8:
        return list(range(n)), list(range(n))
    return list(range(0, n, 2)), list(range(1, n, 2))


def _subset(metric: Metric, idx: list[int]) -> Metric:
    """The metric on the prompts `idx` (per-prompt tokens follow their prompts)."""
    pick = (lambda xs: None if xs is None else [xs[i] for i in idx])
    return metric.model_copy(update={"tokens": pick(metric.tokens), "versus_tokens": pick(metric.versus_tokens)})


def _head_comp(s: Score) -> dict:
    h = s.component
    return {"hook": f"blocks.{h.layer}.attn.hook_z", "layer": h.layer, "head": h.head}


def role(e: HeadExplanation | None) -> str:
    """The head's explanation as a clause of a statement."""
    if e is None:
        return ""
    share = e.attention[e.top_role]
    kind = (" (name-mover-like)" if e.top_role == "answer" and e.dla > 0 else
            " (suppression-like)" if e.top_role in ("answer", "distractor") and e.dla < 0 else "")
    return (f"; at the answer position it attends most to {ROLE_WORDS.get(e.top_role, e.top_role)} "
            f"({share:.0%}) and writes {e.dla:+.2f} directly onto the metric's logits{kind}")


def behaviour(c: Ctx) -> list[dict] | None:
    raw = c.result("characterise/predict")
    if raw is None or not c.prompts:
        return None
    pred = PredictResult.model_validate(raw)
    given = bool(_q(c, "answers") or c.view.question.get("token"))
    if not given and any(h["status"] == "supported" for h in c.view.hypotheses("induction")):
        return None  # the induction line's special case answered it
    metric, words, basis = target(c, pred)
    if weak(metric, basis, pred, None):
        return None  # the predict observation says what the model does instead

    # localise: one gradient scores every head and MLP layer
    corrupted = _q(c, "corrupted") or None
    kinds = ["heads"] + ([] if c.view.model.get("attn_only") or not c.view.model.get("d_mlp") else ["mlp"])
    ref = "behaviour/attribute"
    if not c.started(ref):
        return [c.call(ref, "attribute", AttributeInput(
            prompts=c.prompts, metric=metric, corrupted=corrupted, kinds=kinds, order="drop",
            top=max(CIRCUIT_SIZE, MAX_HEADS)).model_dump(mode="json"))]
    raw = c.result(ref)
    if raw is None and corrupted:  # unpaired corrupted prompts: the mean reference still localises
        ref = "behaviour/attribute/mean"
        if not c.started(ref):
            return [c.call(ref, "attribute", AttributeInput(
                prompts=c.prompts, metric=metric, kinds=kinds, order="drop",
                top=max(CIRCUIT_SIZE, MAX_HEADS)).model_dump(mode="json"))]
        raw = c.result(ref)
    if raw is None:
        return None
    att = AttributeResult.model_validate(raw)
    if weak(metric, basis, pred, att):
        return None
    drops = [s for s in att.top_heads if s.score < 0]
    heads = [s for s in drops if -s.score >= HEAD_OVER_MEDIAN * att.control][:MAX_HEADS]
    mlps = [s for s in att.top_mlps if -s.score >= MLP_MIN_SHARE * abs(att.clean_value)][:MAX_MLPS]
    if not heads and not mlps:
        return None  # attribution singles nothing out; its observation stands

    # explain: where the candidate heads look and what they write
    expl: dict[tuple[int, int], HeadExplanation] = {}
    if heads:
        if not c.started("behaviour/heads"):
            return [c.call("behaviour/heads", "heads", HeadsInput(
                prompts=c.prompts, metric=metric, heads=[s.component for s in heads],
                top=len(heads)).model_dump(mode="json"))]
        raw = c.result("behaviour/heads")
        if raw is not None:
            expl = {(e.layer, e.head): e for e in HeadsResult.model_validate(raw).heads}

    # verify: every statement is a pre-registered test against random components
    desc = "the logit difference" if metric.kind == "logit_diff" else metric.describe()
    steps = []
    cands = [Head(layer=s.component.layer, head=s.component.head) for s in heads]
    for s in heads:
        h = s.component
        label = h.label()
        steps.append((f"behaviour/h/{label}", lambda s=s, h=h, label=label: c.hypothesize(
            f"behaviour/h/{label}",
            f"Head {label} carries {words}: mean-ablating it lowers {desc} by at least 10% (attribution "
            f"estimate {s.score:+.3g}), beyond random heads{role(expl.get((h.layer, h.head)))}",
            "head", _head_comp(s),
            AblateInput(prompts=c.prompts, metric=metric, components=[Head(layer=h.layer, head=h.head)],
                        method="mean", n_random=N_RANDOM, seed=c.seed, control_exclude=cands).model_dump(mode="json"),
            HEAD_CARRIES)))
    for s in mlps:
        m = s.component
        steps.append((f"behaviour/mlp/{m.layer}", lambda s=s, m=m: c.hypothesize(
            f"behaviour/mlp/{m.layer}",
            f"MLP layer {m.layer} carries {words}: mean-ablating it removes at least 20% of {desc} (attribution "
            f"estimate {s.score:+.3g}), and alone it keeps more of it than a random MLP layer",
            "mlp", {"hook": f"blocks.{m.layer}.hook_mlp_out", "layer": m.layer},
            CircuitInput(prompts=c.prompts, metric=metric, components=[Mlp(layer=m.layer)],
                         target=CIRCUIT_TARGET, n_random=max(1, N_RANDOM // 2), seed=c.seed).model_dump(mode="json"),
            MLP_CARRIES)))
    ranked = drops[:CIRCUIT_SIZE]
    if len(ranked) >= 2:
        # The circuit is searched on half the prompts and the set it finds is tested on the other half,
        # so the claim names exactly the heads its test measured, chosen without seeing that test.
        search, held = _halves(len(c.prompts))
        if not c.started("behaviour/circuit/search"):
            steps.append(("behaviour/circuit/search", lambda: c.call("behaviour/circuit/search", "circuit", CircuitInput(
                prompts=[c.prompts[i] for i in search], metric=_subset(metric, search),
                components=[s.component for s in ranked], target=CIRCUIT_TARGET, n_random=1,
                seed=c.seed).model_dump(mode="json"))))
        elif (raw := c.result("behaviour/circuit/search")) is not None:
            found = CircuitResult.model_validate(raw)
            circuit = [x for x in found.circuit if x.kind == "head"]
            names = ", ".join(x.label() for x in circuit)
            steps.append(("behaviour/circuit", lambda: c.hypothesize(
                "behaviour/circuit",
                f"Heads {names} form a circuit for {words}: with every other head mean-ablated they keep at least "
                f"60% of {desc} on held-out prompts, ablating them leaves at most half, and they keep more than "
                "random sets of as many heads (grown from the attribution ranking on the other half of the prompts)",
                "circuit", {"heads": [(x.layer, x.head) for x in circuit],
                            "hook": f"blocks.{circuit[0].layer}.attn.hook_z"},
                CircuitInput(prompts=[c.prompts[i] for i in held], metric=_subset(metric, held),
                             components=circuit, target=MEASURE_ALL, prune_below=0.0,
                             n_random=max(1, N_RANDOM // 2), seed=c.seed).model_dump(mode="json"),
                CIRCUIT_KEEPS)))
    for ref, action in steps:
        if not c.started(ref):
            return [action()]
    return None
