"""What an investigation is asked: the question, its kind and its prompts.

Four kinds, told apart from the text and the prompts file:
    behaviour   "why does the model output X on these prompts?"  (prompts)
    concept     "where is C represented, and can we steer it?"   (positive + negative prompts)
    component   "what does head 1.0 / feature 12 do?"            (a head or an SAE feature named)
    audit       "audit this model for hidden triggers or context-dependent behaviour" (nothing else needed)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from memory.records import Component
from tools.base import Record
from tools.errors import UserError, validation_lines
from tools.files import read_text_file

QuestionKind = Literal["behaviour", "concept", "component", "audit"]
_AUDIT = re.compile(r"\b(audit|hidden|trigger|backdoor|context[- ]dependent)\b", re.I)
_HEAD = re.compile(r"\b(?:head\s+(\d+)\s*[.:]\s*(\d+)|L(\d+)H(\d+))\b", re.I)
_FEATURE = re.compile(r"\bfeature\s+#?(\d+)\b", re.I)


class PromptsFile(Record):
    """A --prompts JSON file (a .txt file is one prompt per line instead)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    prompts: list[str] = []
    """Prompts showing the behaviour."""
    positive: list[str] = []
    """Concept questions: prompts where the concept is present."""
    negative: list[str] = []
    """Concept questions: prompts where it is absent."""
    token: str | None = None
    """The output token the question is about, when there is one."""


class Question(Record):
    """The question and what comes with it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    text: str = Field(min_length=1)
    """As the user asked it."""
    kind: QuestionKind
    """behaviour, concept, component or audit."""
    prompts: list[str] = []
    """Prompts showing the behaviour (an audit without any uses the model's usage sample)."""
    positive: list[str] = []
    """Concept present."""
    negative: list[str] = []
    """Concept absent."""
    token: str | None = None
    """Output token of interest."""
    component: Component | None = None
    """The head or feature a component question names."""
    sae: list[str] = []
    """SAE folders given with --sae."""


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
            raise UserError(f"prompts file {path}: expected a list of prompts or an object with "
                            "prompts / positive / negative / token")
        try:
            parsed = PromptsFile.model_validate(data)
        except ValidationError as e:
            raise UserError(f"prompts file {path}:\n" + "\n".join(validation_lines(e))) from None
    else:
        parsed = PromptsFile(prompts=[l.strip() for l in text.splitlines() if l.strip()])
    if not (parsed.prompts or parsed.positive or parsed.negative):
        raise UserError(f"prompts file {path} has no prompts: give one prompt per line (.txt) or a JSON "
                        'list / {"prompts": [...]} / {"positive": [...], "negative": [...]}')
    if bool(parsed.positive) != bool(parsed.negative):
        raise UserError(f"prompts file {path}: a concept needs both `positive` and `negative` prompts")
    for name in ("prompts", "positive", "negative"):
        for i, p in enumerate(getattr(parsed, name)):
            if not p.strip():
                raise UserError(f"prompts file {path}: {name}[{i}] is empty")
    return parsed


def parse_question(text: str, prompts_file: str | None = None, sae: list[str] | None = None) -> Question:
    """Classify the question and attach its prompts."""
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
    if component is not None:
        kind = "component"
    elif given.positive:
        kind = "concept"
    elif _AUDIT.search(text) or not given.prompts:
        kind = "audit"
    else:
        kind = "behaviour"
    return Question(text=text.strip(), kind=kind, prompts=given.prompts, positive=given.positive,
                    negative=given.negative, token=given.token, component=component, sae=list(sae or []))


def check_component(question: dict | Question, target) -> None:
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
            raise UserError(f"the question names {named}, but this model has {cfg.n_layers} layers "
                            f"(0-{cfg.n_layers - 1}); {info}")
        if c.head is not None and not 0 <= c.head < cfg.n_heads:
            raise UserError(f"the question names head {c.layer}.{c.head}, but layer {c.layer} has {cfg.n_heads} "
                            f"heads ({c.layer}.0-{c.layer}.{cfg.n_heads - 1}); {info}")
    if c.feature is not None and c.sae_id is not None:
        from tools.sae import load_sae

        d_sae = int(load_sae(c.sae_id, target.model).cfg.d_sae)
        if not 0 <= c.feature < d_sae:
            raise UserError(f"the question names feature {c.feature}, but the SAE {c.sae_id} has {d_sae} "
                            f"features (0-{d_sae - 1})")
