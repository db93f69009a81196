"""What an investigation is asked: the question, its kind and its prompts.

Four kinds, told apart from the text and the prompts file:
    behaviour   "why does the model output X on these prompts?"  (prompts; answers / versus for a metric)
    concept     "where is C represented, and can we steer it?"   (positive + negative prompts)
    component   "what does head 1.0 / feature 12 do?"            (a head or an SAE feature named)
    audit       "audit this model for hidden triggers or context-dependent behaviour" (audit wording, below)

Any other question is refused before a model loads (a UserError that says what was understood, what the
investigator can do and how to ask): a free-text question run as a generic audit ends with nothing and no
reason why.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from memory.records import Component
from tools.base import Record
from tools.errors import UserError, validation_lines
from tools.files import read_text_file

if TYPE_CHECKING:
    from tools.metrics import Metric
    from tools.target import Target

QuestionKind = Literal["behaviour", "concept", "component", "audit"]
# The audit wording, an explicit list: a question with one of these (and no head or feature named, no
# positive/negative prompts) is an audit; with --prompts it audits those prompts instead of the usage sample.
AUDIT_WORDS = ("audit", "hidden", "trigger", "backdoor", "context-dependent", "suspicious", "what does this model do")
_AUDIT = re.compile(
    r"\b(audit(?:s|ed|ing)?|hidden|trigger(?:s|ed)?|backdoor(?:s|ed)?|context[- ]dependent|"
    r"suspicious|what (?:does|can) (?:this|the) model do)\b",
    re.I,
)
_HEAD = re.compile(r"\b(?:head\s+(\d+)\s*[.:]\s*(\d+)|L(\d+)H(\d+))\b", re.I)
_FEATURE = re.compile(r"\bfeature\s+#?(\d+)\b", re.I)
# Per-prompt lists that travel with `prompts`, entry i belonging to prompt i (sampled together).
PAIRED = ("answers", "versus", "corrupted")
_EXAMPLE_JSON = (
    '{"prompts": ["When Mary and John went to the store, John gave a drink to"], '
    '"answers": [" Mary"], "versus": [" John"]}'
)


class PromptsFile(Record):
    """A --prompts JSON file (a .txt file is one prompt per line instead)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    prompts: list[str] = Field(default_factory=list)
    """Prompts showing the behaviour."""
    answers: list[str] = Field(default_factory=list)
    """Behaviour questions: the expected answer token of each prompt (e.g. " Mary"), one per prompt, in order."""
    versus: list[str] = Field(default_factory=list)
    """Behaviour questions: a token each answer is compared against (e.g. " John"), one per prompt: the metric
    becomes the logit difference answer - versus."""
    corrupted: list[str] = Field(default_factory=list)
    """Behaviour questions: a corrupted version of each prompt (the same tokens but for the one that matters,
    ideally the same token length), one per prompt, for patching."""
    positive: list[str] = Field(default_factory=list)
    """Concept questions: prompts where the concept is present."""
    negative: list[str] = Field(default_factory=list)
    """Concept questions: prompts where it is absent."""
    token: str | None = None
    """The output token the question is about, for every prompt (instead of per-prompt `answers`)."""


def pair_problems(
    prompts: list[str], answers: list[str], versus: list[str], corrupted: list[str], token: str | None
) -> list[str]:
    """What is wrong with the per-prompt lists that go with `prompts` (empty when nothing is): each one
    problem with how to fix it."""
    n, out = len(prompts), []
    what = {
        "answers": "one expected answer token per prompt, in the same order",
        "versus": "one comparison token per prompt, in the same order",
        "corrupted": "one corrupted prompt per prompt, in the same order",
    }
    given = {"answers": answers, "versus": versus, "corrupted": corrupted}
    for name, items in given.items():
        if not items:
            continue
        if not n:
            out.append(
                f"`{name}` goes with `prompts`, but there are none: give "
                f'{{"prompts": [...], "{name}": [...]}} ({what[name]})'
            )
            continue
        if len(items) != n:
            out.append(
                f"`{name}` has {len(items)} entries for {n} prompts: give {what[name]}"
                + (' (or one `"token"` for every prompt)' if name == "answers" else "")
            )
            continue
        empty = [i for i, a in enumerate(items) if not a]
        if empty:
            out.append(
                f"`{name}[{empty[0]}]` is empty"
                + (f" (and {len(empty) - 1} more)" if len(empty) > 1 else "")
                + f": give {what[name]}"
                + ("" if name == "corrupted" else ', e.g. " Mary"')
            )
    if answers and token is not None:
        out.append("give `token` (one answer for every prompt) or `answers` (one per prompt), not both")
    if versus and not answers and token is None:
        out.append(
            "`versus` is what each answer is compared against: give the answers too "
            '(`answers`, one per prompt, or `token` for all), e.g. "answers": [" Mary"], "versus": [" John"]'
        )
    if versus and len(versus) == n:
        targets = answers if len(answers) == n else [token] * n if token is not None else []
        same = [i for i, (a, v) in enumerate(zip(targets, versus, strict=False)) if a == v and a]
        if same:
            out.append(
                f"versus[{same[0]}] is the answer itself ({versus[same[0]]!r}): a logit difference of a token "
                "with itself is always 0; give the wrong answer the model could give instead"
            )
    if corrupted and len(corrupted) == n:
        same = [i for i, (p, c) in enumerate(zip(prompts, corrupted, strict=False)) if p == c]
        if same:
            out.append(
                f"corrupted[{same[0]}] is the same as prompts[{same[0]}]: a corrupted prompt changes the "
                "token that matters (e.g. swaps the names), else patching from it measures nothing"
            )
    return out


class Question(Record):
    """The question and what comes with it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    text: str = Field(min_length=1)
    """As the user asked it."""
    kind: QuestionKind
    """behaviour, concept, component or audit."""
    prompts: list[str] = Field(default_factory=list)
    """Prompts showing the behaviour (an audit without any uses the model's usage sample)."""
    answers: list[str] = Field(default_factory=list)
    """Expected answer token of each prompt (empty: none given)."""
    versus: list[str] = Field(default_factory=list)
    """Comparison token of each prompt, for a logit difference answer - versus (empty: none given)."""
    corrupted: list[str] = Field(default_factory=list)
    """A corrupted version of each prompt, for patching (empty: none given)."""
    positive: list[str] = Field(default_factory=list)
    """Concept present."""
    negative: list[str] = Field(default_factory=list)
    """Concept absent."""
    token: str | None = None
    """Output token of interest, for every prompt."""
    component: Component | None = None
    """The head or feature a component question names."""
    sae: list[str] = Field(default_factory=list)
    """SAE folders given with --sae."""
    prompts_source: str = ""
    """Where the prompts came from when the user gave none (an audit's usage sample); set by the run."""
    prompts_given: int | None = None
    """How many prompts were given when the run cut them to a seeded sample; set by the run."""
    positive_given: int | None = None
    """Likewise for `positive`."""
    negative_given: int | None = None
    """Likewise for `negative`."""

    @model_validator(mode="after")
    def _paired(self) -> Question:
        problems = pair_problems(self.prompts, self.answers, self.versus, self.corrupted, self.token)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def metric(self) -> Metric | None:
        """The behaviour metric the question asks about: the logit difference answer - versus when `versus`
        is given, else the probability of each prompt's answer (or of `token`); None when nothing names a
        token (the brain then measures the model's own top answers)."""
        from tools.metrics import Metric

        answers = self.answers or None
        if self.versus:
            return Metric(
                kind="logit_diff",
                token=None if answers else self.token,
                tokens=answers,
                versus_tokens=list(self.versus),
            )
        if answers:
            return Metric(kind="prob", tokens=answers)
        if self.token is not None:
            return Metric(kind="prob", token=self.token)
        return None

    def describe_metric(self) -> str:
        """The metric in words, for the report's first section."""
        m = self.metric()
        if m is None:
            return {
                "behaviour": "none given (no `answers` or `token`): the model's own top answer on each prompt",
                "audit": "none given: changes in the model's own outputs",
                "concept": "none: probe accuracy (positive vs negative) and steering",
                "component": "none: what the named part does on the model's inputs",
            }[self.kind]
        if not (m.tokens or m.versus_tokens):
            return m.describe()
        # Metric.describe() says "per-prompt tokens" for either side; name the sides and the first pair instead
        answer = "answer" if m.tokens else repr(m.token)
        first = (m.tokens or [m.token or ""])[0]
        if m.kind == "logit_diff":
            versus = (m.versus_tokens or [m.versus or ""])[0]
            return f"logit[{answer}] - logit[versus], one pair per prompt (prompt 1: {first!r} vs {versus!r})"
        return f"P(answer), one answer per prompt (prompt 1: {first!r})"


def _validation_message(path: Path, e: ValidationError, limit: int = 8) -> str:
    lines = validation_lines(e)
    more = f"\n  ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"prompts file {path}:\n" + "\n".join(lines[:limit]) + more


def read_prompts_file(path: str | Path) -> PromptsFile:
    """A .txt (one prompt per line) or .json prompts file; empty or malformed files are errors."""
    path = Path(path)
    text = read_text_file(path, "prompts file", "one prompt per line (.txt) or a JSON list of prompts (.json)")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"prompts file {path} is not valid JSON ({e.msg}, line {e.lineno})") from None
        if isinstance(data, list):
            data = {"prompts": data}
        if not isinstance(data, dict):
            raise UserError(
                f"prompts file {path}: expected a list of prompts or an object with "
                "prompts / answers / versus / corrupted / positive / negative / token"
            )
        try:
            parsed = PromptsFile.model_validate(data)
        except ValidationError as e:
            raise UserError(_validation_message(path, e)) from None
    else:
        parsed = PromptsFile(prompts=[l.strip() for l in text.splitlines() if l.strip()])
    if not (parsed.prompts or parsed.positive or parsed.negative):
        raise UserError(
            f"prompts file {path} has no prompts: give one prompt per line (.txt) or a JSON "
            'list / {"prompts": [...]} / {"positive": [...], "negative": [...]}'
        )
    if bool(parsed.positive) != bool(parsed.negative):
        raise UserError(f"prompts file {path}: a concept needs both `positive` and `negative` prompts")
    for name in ("prompts", "positive", "negative"):
        for i, p in enumerate(getattr(parsed, name)):
            if not p.strip():
                raise UserError(f"prompts file {path}: {name}[{i}] is empty")
    problems = pair_problems(parsed.prompts, parsed.answers, parsed.versus, parsed.corrupted, parsed.token)
    if problems:
        raise UserError(f"prompts file {path}: " + "; ".join(problems) + f". The shape: {_EXAMPLE_JSON}")
    return parsed


def _unrecognised(text: str) -> UserError:
    """The refusal of a question the investigator cannot act on: what was understood, what it can do, how to ask."""
    short = text if len(text) <= 120 else text[:117] + "..."
    return UserError(
        f"cannot act on the question {short!r} as asked: it names no head or feature, came with no --prompts, "
        f"and has no audit wording ({', '.join(AUDIT_WORDS)}); nothing was loaded or run.\n"
        "The investigator answers four kinds of question:\n"
        "  behaviour  why the model gives an answer on given prompts: --prompts FILE (with `answers`, and "
        "`versus` for a logit difference)\n"
        "  concept    where a concept is represented and whether steering moves it: --prompts FILE with "
        "`positive` and `negative` prompts\n"
        '  component  what one part does: name it, e.g. "what does head 1.0 do?", or "feature 12" with --sae DIR\n'
        '  audit      hidden triggers or context-dependent behaviour, e.g. "audit this model for hidden triggers"\n'
        "For a behaviour, give the prompts that show it, e.g.\n"
        f"  interp investigate --model M {shlex.quote(short)} --prompts prompts.json\n"
        f"  with prompts.json: {_EXAMPLE_JSON}"
    )


def parse_question(text: str, prompts_file: str | None = None, sae: list[str] | None = None) -> Question:
    """Classify the question and attach its prompts; a question of none of the four kinds is a UserError.
    Reads only the prompts file: it runs before any model loads."""
    if not text or not text.strip():
        raise UserError('the question is empty: ask e.g. "audit this model for hidden triggers"')
    given = read_prompts_file(prompts_file) if prompts_file else PromptsFile()
    component = None
    if m := _HEAD.search(text):
        layer, head = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        component = Component(layer=int(layer), head=int(head), hook=f"blocks.{layer}.attn.hook_z")
    elif m := _FEATURE.search(text):
        if not sae:
            raise UserError(f"the question names feature {m.group(1)}: say which SAE with --sae DIR")
        component = Component(feature=int(m.group(1)), sae_id=sae[0])
    kind: QuestionKind
    if component is not None:
        kind = "component"
    elif given.positive:
        kind = "concept"
    elif _AUDIT.search(text):
        kind = "audit"
    elif given.prompts:
        kind = "behaviour"
    else:
        raise _unrecognised(text.strip())
    return Question(
        text=text.strip(),
        kind=kind,
        prompts=given.prompts,
        answers=given.answers,
        versus=given.versus,
        corrupted=given.corrupted,
        positive=given.positive,
        negative=given.negative,
        token=given.token,
        component=component,
        sae=list(sae or []),
    )


def check_component(question: dict[str, Any] | Question, target: Target) -> None:
    """A component question must name a part the model has. Checked right after the model loads, before
    any compute of the investigation: a question about head 9.9 of a 2-layer model is an error, not a
    run that finds nothing and reports no errors."""
    q = question if isinstance(question, Question) else Question.model_validate(question)
    c = q.component
    if q.kind != "component" or c is None:
        return
    cfg = target.model.cfg
    info = f"`interp model info --model {target.spec}` shows its shape"
    if c.layer is not None:
        if not 0 <= c.layer < cfg.n_layers:
            named = f"head {c.layer}.{c.head}" if c.head is not None else f"layer {c.layer}"
            raise UserError(
                f"the question names {named}, but this model has {cfg.n_layers} layers (0-{cfg.n_layers - 1}); {info}"
            )
        if c.head is not None and not 0 <= c.head < cfg.n_heads:
            raise UserError(
                f"the question names head {c.layer}.{c.head}, but layer {c.layer} has {cfg.n_heads} "
                f"heads ({c.layer}.0-{c.layer}.{cfg.n_heads - 1}); {info}"
            )
    if c.feature is not None and c.sae_id is not None:
        from tools.sae import load_sae

        d_sae = int(load_sae(c.sae_id, target.model).cfg.d_sae)
        if not 0 <= c.feature < d_sae:
            raise UserError(
                f"the question names feature {c.feature}, but the SAE {c.sae_id} has {d_sae} features (0-{d_sae - 1})"
            )
