"""Explanations of SAE features: the structured record, the heuristic explainer, and the
offline judge that applies a structured explanation as a rule.

An explanation is data, not prose to be parsed: the token set the feature fires
on, the preceding tokens it needs (if any), and what the model tends to say
next. The free-text `text` is for people; scorers read the fields.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from agent.labeling.examples import Example, FeatureExamples


class Explanation(BaseModel):
    """What a feature responds to, in a form a rule (or a judge) can apply."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    text: str = Field(min_length=1, max_length=500)
    """One sentence for people, e.g. 'the tokens t1, t9, t29 (a category)'."""
    tokens: list[str] = Field(min_length=1, max_length=64)
    """The tokens the feature fires on."""
    previous: list[str] | None = Field(None, max_length=64)
    """When the tokens fire only in some contexts: the tokens that must come right before."""
    output: list[str] | None = Field(None, max_length=16)
    """Tokens the model tends to predict where the feature fires (what steering along it should promote)."""

    def applies(self, tokens: list[str]) -> bool:
        """The rule: does this explanation say the feature fires at the last token of `tokens`?"""
        if tokens[-1] not in self.tokens:
            return False
        return self.previous is None or (len(tokens) > 1 and tokens[-2] in self.previous)

    def marks_right(self, tokens: list[str], marked: list[int]) -> bool:
        """Fuzzing by rule: are all the marked positions ones the explanation says fire?"""
        return bool(marked) and all(self.applies(tokens[: i + 1]) for i in marked)


def heuristic_explanation(fe: FeatureExamples, coverage: float = 0.9, max_tokens: int = 16) -> Explanation | None:
    """The smallest token set covering `coverage` of the positions where the feature fires in the
    explain half (weak activations count as much as strong ones: a label must cover them), and,
    when those tokens often occur without firing, the preceding tokens that make them fire."""
    examples = fe.top + fe.quantiles
    if not examples:
        return None
    counts = {t: fired for t, (fired, _) in fe.token_rates.items()} or {e.token: 1 for e in examples}
    total = sum(counts.values())
    chosen: list[str] = []
    acc = 0
    for tok, m in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if acc >= coverage * total or len(chosen) >= max_tokens:
            break
        chosen.append(tok)
        acc += m
    # Rarer tokens it fires on whenever they occur belong in the set too (a category's
    # less frequent members): reliability, not frequency, makes them part of the feature.
    reliable = [
        t
        for t, (fired, seen) in sorted(fe.token_rates.items(), key=lambda kv: (-kv[1][0], kv[0]))
        if t not in chosen and fired >= 2 and fired >= 0.5 * seen
    ]
    chosen += reliable[: max(0, max_tokens - len(chosen))]
    # Does the token alone decide it? If the chosen tokens fire on under half of their
    # occurrences, the feature is contextual: say which preceding tokens it needs.
    fired = sum(fe.token_rates.get(t, (0, 0))[0] for t in chosen)
    seen = sum(fe.token_rates.get(t, (0, 0))[1] for t in chosen)
    previous = None
    if seen and fired / seen < 0.5:
        prev = sorted({e.previous for e in examples if e.token in chosen and e.previous is not None})
        previous = prev[:64] or None
    text = f"fires on {', '.join(chosen)}" + (f" when right after {', '.join(previous)}" if previous else "")
    # what the model predicts where the feature fires most strongly, when it agrees
    nexts = [e.next_token for e in fe.top if e.token in chosen and e.next_token]
    output = None
    if nexts:
        top, n = max(((t, nexts.count(t)) for t in set(nexts)), key=lambda x: (x[1], x[0]))
        if n >= 0.6 * len(nexts):
            output = [top]
            text += f"; the model then predicts {top}"
    return Explanation(text=text, tokens=chosen, previous=previous, output=output)


def examples_text(examples: list[Example], marked: bool = True) -> list[str]:
    """Contexts as text with the activating tokens between << >> (for an LLM explainer or judge).
    The marks are ours: any << or >> already in the text is neutralised first."""
    out = []
    for e in examples:
        parts = []
        for tok, a in zip(e.tokens, e.activations, strict=False):
            tok = tok.replace("<<", "< <").replace(">>", "> >")
            parts.append(f"<<{tok}>>" if marked and a > 0 else tok)
        out.append(" ".join(parts))
    return out
