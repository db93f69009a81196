"""Next-token predictions: what the model says at the end of each prompt.

The cheapest characterisation of a behaviour (pragmatic interpretability: look at what the model
does before explaining it), and where a brain reads off the tokens its later
metrics should measure.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Record, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.estimate import padded
from tools.prompts import encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from tools.target import Target


class PredictInput(ToolInput):
    """The model's top next-token predictions at the last position of each prompt."""

    prompts: list[str]
    """Prompts to run."""
    top_k: int = Field(3, ge=1, le=20)
    """Predictions kept per prompt."""


class Prediction(Record):
    """One prompt's next-token distribution, summarised."""

    argmax: str
    """Most likely next token."""
    top: list[tuple[str, float]]
    """The top_k tokens with their probabilities."""
    entropy: float
    """Entropy of the next-token distribution, in nats."""


class PredictResult(ToolResult):
    """Predictions per prompt and how consistent they are."""

    predictions: list[Prediction]
    """One per prompt, in order."""
    most_common: list[tuple[str, float]]
    """Argmax tokens by share of prompts, most common first (at most 10)."""
    mean_entropy: float = measure(0)
    """Mean next-token entropy over prompts."""
    effect: float = measure(0, 1)
    """Share of prompts whose argmax is the most common one."""


def run(target: Target, inp: PredictInput) -> PredictResult:
    import torch

    model = target.model
    meter = Meter()
    enc = encode(model, inp.prompts)
    logits = meter.run(model, enc.tokens)
    rows = torch.arange(len(enc.prompts), device=enc.tokens.device)
    logp = logits[rows, enc.last].float().log_softmax(-1)
    probs = logp.exp()
    entropy = -(probs * logp).sum(-1)
    top_p, top_i = probs.topk(inp.top_k, dim=-1)
    preds = []
    for i in range(len(enc.prompts)):
        toks = [model.to_single_str_token(int(t)) for t in top_i[i]]
        preds.append(
            Prediction(
                argmax=toks[0],
                top=[(t, round(float(p), 4)) for t, p in zip(toks, top_p[i], strict=True)],
                entropy=round(float(entropy[i]), 4),
            )
        )
    counts = Counter(p.argmax for p in preds)
    common = [(t, round(c / len(preds), 4)) for t, c in counts.most_common(10)]
    return PredictResult(
        tool="predict",
        summary=(
            f"{len(preds)} prompts: most common next token {common[0][0]!r} ({common[0][1]:.0%}), "
            f"{len(counts)} distinct; mean entropy {float(entropy.mean()):.2f} nats"
        ),
        cost=meter.cost(),
        predictions=preds,
        most_common=common,
        mean_entropy=round(float(entropy.mean()), 4),
        effect=common[0][1],
    )


def estimate(t: Target, inp: PredictInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    return padded(t.model, inp.prompts)


SPEC = ToolSpec(
    name="predict",
    input_model=PredictInput,
    result_model=PredictResult,
    run=run,
    estimate=estimate,
    tier="observational",
)
