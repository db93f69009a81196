"""Any behaviour question: characterise -> localise -> explain -> verify, whatever the behaviour.

Given prompts (and, when the question has them, each prompt's answer, the token it competes with, and
corrupted prompts without the behaviour):

    characterise  `predict` (the characterise line): what the model answers, how consistently. A
                  behaviour the model does not show reliably is not localised: noise has no circuit.
    localise      `attribute` over every head and MLP layer at once (integrated gradients per layer on small
                  models, one gradient on deep ones; the reference is the corrupted prompts when given,
                  else each component's mean).
    explain       `heads` on the candidate heads: direct logit effect and the token roles they attend
                  to. It goes into the statements of the hypotheses below as context; it is not their test.
    verify        each candidate head mean-ablated against random heads (`ablate`; heads whose estimate
                  says they work against the behaviour are tested for the opposite sign), each candidate MLP
                  layer against random MLP layers (`circuit` of one), and the top heads as a circuit with
                  faithfulness and completeness against random sets of heads (`circuit`).

The metric is a logit difference on each prompt: the given answer minus the given versus token; without
versus tokens, the given answer (or else the model's own top answer) minus the model's strongest other
token there. Repeated-sequence prompts with no answers given are the induction line's fast special case:
when it has found supported induction heads, this line adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from agent.brains.lines.ctx import Action, Criterion, Ctx
from tools.ablate import AblateInput, Head
from tools.attribute import AttributeInput, AttributeResult, Mlp, Ranked, Score
from tools.circuit import CircuitInput, CircuitResult
from tools.heads import HeadExplanation, HeadsInput, HeadsResult
from tools.metrics import Metric
from tools.predict import PredictResult

C = TypeVar("C", Head, Mlp)

Step = tuple[str, Callable[[], Action] | None]
"""A verify step: its ref, and a function that builds its action (None: it cannot be taken)."""

Basis = Literal["versus", "answers", "own"]
"""What the metric rests on: given answers and versus tokens, given answers alone, or the model's own answers."""

MIN_ANSWER_RATE = 0.5
"""Given answers without versus tokens: share of prompts whose top prediction is the given answer below which
the model does not show the behaviour asked about, and nothing is localised."""
MIN_OWN_PROB = 0.2
"""Own-answer metric: mean probability of the model's top answer below which its answers are too unsure to
be a behaviour worth localising."""
MIN_LOGIT_DIFF = 0.1
"""Logit-difference metric: mean logit[answer] - logit[versus] at or below which the model does not prefer
the answer, and nothing is localised."""
MAX_HEADS = 5
"""Candidate heads tested one by one (each test is 2 + N_RANDOM forward passes); at most half the model's
heads, so that the random control has heads left to draw."""
MAX_OPPOSING = 2
"""Heads whose estimated effect is the largest rise of the metric (they work against the behaviour, e.g. IOI's
negative name movers), tested one by one after the heads that carry it."""
MAX_MLPS = 2
"""Candidate MLP layers tested one by one."""
ATTRIBUTE_STEPS = 5
"""Integrated-gradient steps of the attribution where each layer can be integrated on its own (below).
Plain attribution patching (1 step) misses heads whose attention saturates: on a trained lookup organism it
ranked the head that mean ablation shows carries most of the answer fifth of eight."""
PER_LAYER_MAX_PASSES = 24
"""Integrate each layer on its own (`path` per_layer: exact for a head that acts through later attention
patterns, such as a previous-token head feeding induction heads) when that takes at most this many passes.
On the induction organism the input path ranks the previous-token head, whose ablation costs the most,
nowhere near the top; per layer ranks it first (13 passes). Deeper models get one plain gradient: on
SmolLM2 IOI it agrees with per-head mean ablation better than 3 steps along the input (Spearman 0.91 against
0.62, `interp bench attribution`) at a third of the cost."""
MIN_SHARE = 0.05
"""A head or MLP layer is a candidate when its estimated drop is at least this share of |the metric| (the
test then asks for twice that)."""
CIRCUIT_SIZE = 10
"""Heads of the attribution ranking offered to `circuit` (its curve costs 2 forward passes per head)."""
CIRCUIT_TARGET = 0.8
"""Faithfulness at which `circuit` stops growing the prefix."""
MEASURE_ALL = 1.5
"""`circuit` target no prefix reaches: the held-out test measures the whole set found, not a prefix of it
(pruning only drops a head whose addition lowered faithfulness, and only if that keeps no less)."""
N_RANDOM = 6
"""Random components per control (ablate: 2 + N_RANDOM forward passes); the circuit tests draw
N_RANDOM // 2 random sets."""

HEAD_CARRIES = Criterion("ablate", (("relative_effect", "<=", -0.1), ("z_score", "<=", -3.0)))
"""Mean-ablating the head removes >= 10% of the behaviour, and its change lies >= 3 spreads of the
random-head control below that control's mean."""
HEAD_OPPOSES = Criterion("ablate", (("relative_effect", ">=", 0.1), ("z_score", ">=", 3.0)))
"""Mean-ablating the head raises the behaviour by >= 10%, >= 3 spreads of the random-head control above
that control's mean."""
MLP_CARRIES = Criterion("circuit", (("completeness", "<=", 0.8), ("completeness_margin", ">=", 0.1)))
"""Mean-ablating the MLP layer leaves <= 80% of the behaviour (1 = the full model, 0 = every MLP layer
ablated), and removes 0.1 more of it than ablating a random MLP layer."""
CIRCUIT_KEEPS = Criterion("circuit", (("faithfulness", ">=", 0.6), ("completeness", "<=", 0.5), ("margin", ">=", 0.3)))
"""With only the circuit's heads kept (every other head mean-ablated) >= 60% of the behaviour remains, with
them ablated <= 50%, and the circuit keeps 0.3 more than random sets of as many heads."""

DIRECT_SHARE = 0.1
"""A head writes the answer directly when its direct logit attribution is at least this share of the metric."""
ROLE_WORDS = {
    "answer": "the answer token",
    "distractor": "the competing token",
    "previous": "the previous token",
    "induction": "the token after an earlier copy of the current one",
    "duplicate": "an earlier copy of the current token",
    "bos": "the first token",
    "self": "itself",
    "other": "other tokens",
}
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
        eg = f"{answers[0]!r} over {versus[0]!r}"
        words = (
            f"the preference for {eg}"
            if same
            else f"the preference for each prompt's answer over its alternative (e.g. {eg})"
        )
        return Metric(kind="logit_diff", tokens=answers, versus_tokens=versus), words, "versus"
    own = not answers
    basis: Basis = "own" if own else "answers"
    answers = answers or [p.argmax for p in pred.predictions]
    rivals = [next((t for t, _ in p.top if t != a), None) for p, a in zip(pred.predictions, answers, strict=False)]
    if any(r is None for r in rivals):  # a vocabulary too small for a runner-up
        return Metric(kind="prob", tokens=answers), f"the prediction of {answers[0]!r}", basis
    what = (
        "the model's own answer on each prompt (its top prediction, e.g. {a!r}; no answer was given)"
        if own
        else "the prediction of {a!r}"
        if len(set(answers)) == 1
        else "the prediction of each prompt's answer (e.g. {a!r})"
    )
    words = what.format(a=answers[0]) + ", measured against its strongest alternative on each prompt"
    return Metric(kind="logit_diff", tokens=answers, versus_tokens=rivals), words, basis


def weak(metric: Metric, basis: Basis, pred: PredictResult, att: AttributeResult | None) -> bool:
    """The model does not show the behaviour reliably enough to localise it."""
    if basis == "own":
        return sum(p.top[0][1] for p in pred.predictions) / len(pred.predictions) < MIN_OWN_PROB
    if basis == "answers":
        hits = sum(p.argmax == t for p, t in zip(pred.predictions, metric.tokens or [], strict=False))
        return hits / len(pred.predictions) < MIN_ANSWER_RATE
    return att is not None and att.clean_value <= MIN_LOGIT_DIFF


def _halves(n: int) -> tuple[list[int], list[int]]:
    """(search, held-out) prompt indices: alternate prompts, or all of them twice when there are too few."""
    if n < 8:
        return list(range(n)), list(range(n))
    return list(range(0, n, 2)), list(range(1, n, 2))


def _subset(metric: Metric, idx: list[int]) -> Metric:
    """The metric on the prompts `idx` (per-prompt tokens follow their prompts)."""

    def pick(xs: list[str] | None) -> list[str] | None:
        return None if xs is None else [xs[i] for i in idx]

    return metric.model_copy(update={"tokens": pick(metric.tokens), "versus_tokens": pick(metric.versus_tokens)})


def role(e: HeadExplanation | None, clean: float) -> str:
    """The head's explanation as a clause of a statement: where it looks from the answer position, what it
    writes directly, and the familiar role that pattern resembles (a resemblance, not a finding)."""
    if e is None:
        return ""
    share = e.attention[e.top_role]
    direct = abs(e.dla) >= DIRECT_SHARE * abs(clean)
    like = {
        ("answer", True, True): "name-mover-like",
        ("answer", True, False): "negative-name-mover-like",
        ("distractor", True, True): "suppresses the competing token it reads: copy-suppression-like",
        ("distractor", True, False): "copies the competing token",
        ("induction", True, True): "induction-like",
    }.get((e.top_role, direct, e.dla > 0))
    if not direct:
        like = "little direct effect: it acts through later components" + (
            ", S-inhibition-like" if e.top_role in ("distractor", "duplicate") else ""
        )
    return (
        f"; at the answer position it attends most to {ROLE_WORDS.get(e.top_role, e.top_role)} "
        f"({share:.0%}) and writes {e.dla:+.2f} directly onto the logit difference" + (f" ({like})" if like else "")
    )


def localise(c: Ctx, metric: Metric) -> list[Action] | AttributeResult | None:
    """The next attribution call, its result once one has succeeded, or None when none could run.

    Fallbacks, each tried only when the one before failed: a plain gradient when integrated gradients do
    not fit the budget, the mean reference when the corrupted prompts cannot be used (unpaired lengths)."""
    corrupted = _q(c, "corrupted") or None
    kinds = ["heads"] + ([] if c.view.model.get("attn_only") or not c.view.model.get("d_mlp") else ["mlp"])
    hooks = c.view.model["n_layers"] * len(kinds) + 1  # what attribute's per-layer path interpolates
    path = "per_layer" if 1 + (ATTRIBUTE_STEPS - 1) * hooks <= PER_LAYER_MAX_PASSES else "input"
    for ref_prompts in dict.fromkeys([corrupted and tuple(corrupted), None]):
        for steps in dict.fromkeys([ATTRIBUTE_STEPS if path == "per_layer" else 1, 1]):
            ref = f"behaviour/attribute/{'corrupted' if ref_prompts else 'mean'}/{steps}"
            if not c.started(ref):
                return [
                    c.call(
                        ref,
                        c.build(
                            AttributeInput,
                            prompts=c.prompts,
                            metric=metric,
                            corrupted=list(ref_prompts) if ref_prompts else None,
                            kinds=kinds,
                            order="drop",
                            steps=steps,
                            path=path,
                            top=max(CIRCUIT_SIZE, MAX_HEADS),
                        ),
                    )
                ]
            if (att := c.result(ref, AttributeResult)) is not None:
                return att
    return None


def behaviour(c: Ctx) -> list[Action] | None:
    pred = c.result("characterise/predict", PredictResult)
    if pred is None or not c.prompts:
        return None
    given = bool(_q(c, "answers") or c.view.question.get("token"))
    if not given and any(h["status"] == "supported" for h in c.view.hypotheses("induction")):
        return None  # the induction line's special case answered it
    metric, words, basis = target(c, pred)
    if weak(metric, basis, pred, None):
        return None  # the predict observation says what the model does instead
    att = localise(c, metric)
    if att is None or isinstance(att, list):
        return att
    if weak(metric, basis, pred, att):
        return None
    drops = [s for s in att.top_heads if s.score < 0]
    n_heads = c.view.model["n_layers"] * c.view.model["n_heads"]
    bar = MIN_SHARE * abs(att.clean_value)
    heads = [s for s in drops if -s.score >= bar][: min(MAX_HEADS, n_heads // 2)]
    rises = sorted(
        (
            Score(component=Head(layer=l, head=h), name=f"L{l}H{h}", score=v)
            for l, row in enumerate(att.head_grid)
            for h, v in enumerate(row)
            if v >= bar
        ),
        key=lambda s: -s.score,
    )
    opposing = rises[: max(0, min(MAX_OPPOSING, n_heads // 2 - len(heads)))]
    mlps = [s for s in att.top_mlps if -s.score >= bar][:MAX_MLPS]
    if not heads and not opposing and not mlps:
        return None  # attribution singles nothing out; its observation stands

    # explain: where the candidate heads look and what they write
    expl: dict[tuple[int, int], HeadExplanation] = {}
    if heads or opposing:
        if not c.started("behaviour/heads"):
            return [
                c.call(
                    "behaviour/heads",
                    c.build(
                        HeadsInput,
                        prompts=c.prompts,
                        metric=metric,
                        heads=[s.component for s in heads + opposing],
                        top=len(heads + opposing),
                    ),
                )
            ]
        if (explained := c.result("behaviour/heads", HeadsResult)) is not None:
            expl = {(e.layer, e.head): e for e in explained.heads}

    # verify: every statement a pre-registered test against random components, in order of value
    plan = Plan(c, metric, words, att)
    cands = [x.component for x in heads + opposing]
    # largest estimated effects first, whichever their sign: under a short budget they are the answer
    ranked = sorted([(s, False) for s in heads] + [(s, True) for s in opposing], key=lambda t: -abs(t[0].score))
    steps = [plan.head(s, cands, expl, opposes=o) for s, o in ranked]
    steps += [plan.mlp(s) for s in mlps]
    if len(drops) >= 2:
        steps.append(plan.circuit(drops[:CIRCUIT_SIZE]))
    for ref, action in steps:
        if action is not None and not c.started(ref):
            return [action()]
    return None


def _as(kind: type[C], s: Score) -> C:
    """The component of an attribution score from a ranking of one kind (top_heads, top_mlps)."""
    if not isinstance(s.component, kind):
        raise TypeError(f"{s.name} is a {s.component.kind}, not a {kind.__name__}: rank it among its own kind")
    return s.component


class Plan:
    """The verify step's actions for one behaviour, each as (ref, a function that builds it)."""

    def __init__(self, c: Ctx, metric: Metric, words: str, att: AttributeResult) -> None:
        self.c, self.metric, self.words, self.att = c, metric, words, att
        self.desc = "the logit difference" if metric.kind == "logit_diff" else metric.describe()

    def head(
        self, s: Score, cands: list[Ranked], expl: dict[tuple[int, int], HeadExplanation], opposes: bool = False
    ) -> Step:
        """A head whose ablation lowers the metric (it carries the behaviour), or with `opposes`, raises it (it
        works against the behaviour, as IOI's negative name movers do)."""
        c, h = self.c, _as(Head, s)
        ref = f"behaviour/h/{h.label()}"
        claim = (
            f"works against {self.words}: mean-ablating it raises {self.desc} by at least 10%"
            if opposes
            else f"carries {self.words}: mean-ablating it lowers {self.desc} by at least 10%"
        )
        return ref, lambda: c.hypothesize(
            ref,
            f"Head {h.label()} {claim} (attribution estimate {s.score:+.3g}), beyond random heads"
            f"{role(expl.get((h.layer, h.head)), self.att.clean_value)}",
            "head",
            {"hook": f"blocks.{h.layer}.attn.hook_z", "layer": h.layer, "head": h.head},
            c.build(
                AblateInput,
                prompts=c.prompts,
                metric=self.metric,
                components=[Head(layer=h.layer, head=h.head)],
                method="mean",
                n_random=N_RANDOM,
                seed=c.seed,
                control_exclude=cands,
            ),
            HEAD_OPPOSES if opposes else HEAD_CARRIES,
        )

    def mlp(self, s: Score) -> Step:
        c, m = self.c, _as(Mlp, s)
        ref = f"behaviour/mlp/{m.layer}"
        return ref, lambda: c.hypothesize(
            ref,
            f"MLP layer {m.layer} carries {self.words}: mean-ablating it leaves at most 80% of the part of "
            f"{self.desc} that the MLP layers carry (attribution estimate {s.score:+.3g}), and removes more of "
            "it than ablating a random MLP layer",
            "mlp",
            {"hook": f"blocks.{m.layer}.hook_mlp_out", "layer": m.layer},
            c.build(
                CircuitInput,
                prompts=c.prompts,
                metric=self.metric,
                components=[Mlp(layer=m.layer)],
                target=CIRCUIT_TARGET,
                n_random=max(1, N_RANDOM // 2),
                seed=c.seed,
            ),
            MLP_CARRIES,
        )

    def circuit(self, ranked: list[Score]) -> Step:
        """The circuit is searched on half the prompts and the set it finds is tested on the other half, so
        the claim names exactly the heads its test measured, chosen without seeing that test."""
        c = self.c
        search, held = _halves(len(c.prompts))
        if not c.started("behaviour/circuit/search"):
            return "behaviour/circuit/search", lambda: c.call(
                "behaviour/circuit/search",
                c.build(
                    CircuitInput,
                    prompts=[c.prompts[i] for i in search],
                    metric=_subset(self.metric, search),
                    components=[s.component for s in ranked],
                    target=CIRCUIT_TARGET,
                    n_random=1,
                    seed=c.seed,
                ),
            )
        searched = c.result("behaviour/circuit/search", CircuitResult)
        if searched is None:
            return "behaviour/circuit", None
        found = [x for x in searched.circuit if isinstance(x, Head)]
        if not found:
            return "behaviour/circuit", None  # the search kept no head: no circuit of heads to test
        names = ", ".join(x.label() for x in found)
        return "behaviour/circuit", lambda: c.hypothesize(
            "behaviour/circuit",
            f"Heads {names} form a circuit for {self.words}: with every other head mean-ablated they keep at "
            f"least 60% of {self.desc} on held-out prompts, ablating them leaves at most half, and they keep more "
            "than random sets of as many heads (grown from the attribution ranking on the other half of the prompts)",
            "circuit",
            {"heads": [(x.layer, x.head) for x in found], "hook": f"blocks.{found[0].layer}.attn.hook_z"},
            c.build(
                CircuitInput,
                prompts=[c.prompts[i] for i in held],
                metric=_subset(self.metric, held),
                components=found,
                target=MEASURE_ALL,
                prune_below=0.0,
                n_random=max(1, N_RANDOM // 2),
                seed=c.seed,
            ),
            CIRCUIT_KEEPS,
        )
