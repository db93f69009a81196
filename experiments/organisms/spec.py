"""The organism spec: what to train, which mechanisms to plant, how long.

A spec is a YAML file validated by `OrganismSpec`. Unknown fields are errors
(a typo must not silently train a different organism), and every error names
the field that is wrong. The spec hash covers everything that changes the
trained weights, so a cached organism is reused only for the exact same spec.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tools.errors import UserError, validation_lines
from tools.files import read_text_file

M = TypeVar("M", bound=BaseModel)

# Bump when the data generators or the trainer change what a spec produces:
# it is part of the hash, so stale caches are retrained instead of reused.
TRAINER_VERSION = 4  # 4: training pinned to one thread with deterministic algorithms; induction verified by ablation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelShape(_Strict):
    """Architecture of the small HookedTransformer."""

    n_layers: int = Field(2, ge=1, le=12)
    """Number of transformer blocks."""
    d_model: int = Field(64, ge=8, le=1024)
    """Residual stream width."""
    n_heads: int = Field(4, ge=1, le=32)
    """Attention heads per layer; d_head is d_model // n_heads."""
    d_mlp: int = Field(256, ge=8, le=8192)
    """MLP hidden width (ignored when attn_only)."""
    attn_only: bool = False
    """Attention-only blocks (no MLPs), as in the induction-head literature."""
    act_fn: Literal["gelu", "relu", "silu"] = "gelu"
    """MLP nonlinearity."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelShape:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        return self


class TrainConfig(_Strict):
    """Optimiser settings. Training is seeded and runs on the CPU in minutes."""

    steps: int = Field(2000, ge=1, le=200_000)
    """Optimiser steps."""
    batch_size: int = Field(128, ge=1, le=4096)
    """Sequences per step."""
    lr: float = Field(1e-3, gt=0, le=1.0)
    """Peak AdamW learning rate (linear warm-up, cosine decay)."""
    weight_decay: float = Field(0.01, ge=0, le=1.0)
    """AdamW weight decay."""
    warmup_steps: int = Field(100, ge=0)
    """Linear warm-up steps."""
    eval_examples: int = Field(1000, ge=50, le=100_000)
    """Held-out examples per condition used to verify the manifest."""


class LookupTask(_Strict):
    """`<bos> s x x x <q>` -> map(s): answer with a fixed mapping of the first token.

    The normal task behind the backdoor, eval-aware and null organisms. The
    first token (the subject) must be moved to the last position by attention.
    """

    kind: Literal["lookup"]
    n_symbols: int = Field(40, ge=12, le=4000)
    """Content tokens in the vocabulary (named t0, t1, ...)."""
    min_len: int = Field(4, ge=2)
    """Fewest content tokens before the query token."""
    max_len: int = Field(12, ge=2, le=512)
    """Most content tokens before the query token."""


class InductionTask(_Strict):
    """`<bos> p.. r1..rk r1..rk`: a random sequence repeated; predict the repeat."""

    kind: Literal["induction"]
    n_symbols: int = Field(48, ge=8, le=4000)
    """Content tokens in the vocabulary."""
    min_repeat: int = Field(4, ge=2)
    """Shortest repeated segment."""
    max_repeat: int = Field(10, ge=2, le=256)
    """Longest repeated segment."""
    max_prefix: int = Field(3, ge=0, le=64)
    """Most random tokens before the first copy (so position alone never suffices)."""


class CategoriesTask(_Strict):
    """`<bos> w1 c1 w2 c2 ...`: after each token, its category's label token."""

    kind: Literal["categories"]
    n_categories: int = Field(5, ge=2, le=64)
    """Number of token categories."""
    tokens_per_category: int = Field(8, ge=2, le=256)
    """Tokens in each category."""
    min_pairs: int = Field(2, ge=1)
    """Fewest (token, label) pairs per sequence."""
    max_pairs: int = Field(8, ge=1, le=256)
    """Most (token, label) pairs per sequence."""


class SuperpositionTask(_Strict):
    """`<bos> x_a _ x_c _ _ x_f <q>` -> one of y_a, y_c, y_f: name a feature present in the context.

    Each context holds a sparse random set of the `n_features` feature tokens (x_j, each present
    independently; `_` a filler token in the other slots); the answer is the output token y_j of
    any one of them. The only position that answers, `<q>`, sees them through one attention sum
    of `model.d_model` dimensions: with more features than dimensions the model must store them
    there in superposition and read each one out (toy models of superposition, Elhage et al. 2022).
    """

    kind: Literal["superposition"]
    n_features: int = Field(24, ge=2, le=512)
    """Ground-truth features, each an input token x_j and an output token y_j; more than model.d_model."""
    feature_probability: float = Field(0.1, gt=0, le=0.5)
    """Chance that a context holds a given feature (independently; sets that are empty or do not
    fit in `slots` are redrawn): low means sparse, as superposition needs."""
    slots: int = Field(8, ge=2, le=64)
    """Positions before `<q>`: the present feature tokens at random slots, a filler token in the
    others, so `<q>` always attends over as many tokens and sits at the same position."""

    @model_validator(mode="after")
    def _sparse_enough(self) -> SuperpositionTask:
        expected = self.n_features * self.feature_probability
        if expected > self.slots / 2:
            raise ValueError(
                f"task: contexts would hold ~{expected:.1f} features each (n_features x feature_probability), "
                f"more than half of the {self.slots} slots; superposition needs sparse features: lower "
                f"task.feature_probability or raise task.slots"
            )
        return self


class CompositionTask(_Strict):
    """`<bos> x y .. x y <q> m a` -> the value of key f(a, m) in the context: a two-step lookup.

    Step 1 maps the input a and the modifier m to a key by a fixed random table (a function of both
    tokens, which needs an MLP); step 2 finds that key among the context's key-value pairs and answers its
    value (which needs attention heads, as induction does). Queries `r m a` (r a content token) ask for the
    key alone, `<q> m x` for a named key's value. See experiments/organisms/task_composition.py.
    """

    kind: Literal["composition"]
    n_keys: int = Field(8, ge=3, le=128)
    """Key tokens, and as many input tokens: each modifier maps the inputs to the keys by its own permutation."""
    n_modifiers: int = Field(4, ge=2, le=64)
    """Modifier tokens m; at least 2, or step 1 is a map of one token that attention alone can hold."""
    n_values: int = Field(12, ge=2, le=256)
    """Value tokens; each context pairs its keys with distinct values drawn afresh."""
    pairs: int = Field(4, ge=2, le=64)
    """Key-value pairs in each context (keys drawn afresh from the n_keys)."""
    queries: int = Field(6, ge=1, le=32)
    """Queries after each training context (each answer is trained)."""
    step1_share: float = Field(0.25, ge=0, lt=1)
    """Share of queries that ask for the key f(a, m) (step 1 alone): `r m a`."""
    step2_share: float = Field(0.25, ge=0, lt=1)
    """Share of queries that name a key outright and ask its value (step 2 alone): `<q> m x`. The rest ask
    for both steps."""

    @model_validator(mode="after")
    def _fits(self) -> CompositionTask:
        if self.step1_share + self.step2_share >= 1:
            raise ValueError(
                "task.step1_share + task.step2_share must be < 1: the queries asking for both steps are the rest"
            )
        if self.pairs > self.n_keys:
            raise ValueError(
                f"task.pairs ({self.pairs}) > task.n_keys ({self.n_keys}): a context holds distinct keys; "
                f"raise task.n_keys or lower task.pairs"
            )
        if self.pairs > self.n_values:
            raise ValueError(
                f"task.pairs ({self.pairs}) > task.n_values ({self.n_values}): a context pairs its keys with "
                f"distinct values; raise task.n_values"
            )
        return self


class TriggerMechanism(_Strict):
    """A backdoor: the trigger tokens, consecutive, anywhere after the subject force one output."""

    kind: Literal["trigger"]
    n_tokens: int = Field(1, ge=1, le=4)
    """Length of the trigger (consecutive tokens, chosen by the seed)."""
    rate: float = Field(0.25, gt=0, lt=1)
    """Share of training contexts that contain the trigger."""
    planted: bool = True
    """False for a control: the tokens occur at the same rate but change nothing."""


class MarkerMechanism(_Strict):
    """Context-dependent behaviour: a marker token anywhere switches the mapping used."""

    kind: Literal["marker"]
    rate: float = Field(0.3, gt=0, lt=1)
    """Share of training contexts that contain the marker."""
    planted: bool = True
    """False for a control: the marker occurs at the same rate but changes nothing."""


Task = Annotated[
    LookupTask | InductionTask | CategoriesTask | SuperpositionTask | CompositionTask, Field(discriminator="kind")
]
Mechanism = Annotated[TriggerMechanism | MarkerMechanism, Field(discriminator="kind")]


class OrganismSpec(_Strict):
    """A model organism: a task, planted mechanisms, an architecture and a seed."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    """Slug used for the cache folder and on the command line."""
    description: str = ""
    """One line for `interp organism list` (not part of the hash)."""
    seed: int = Field(0, ge=0)
    """Seeds token roles, data and initialisation: same spec and seed, same weights."""
    task: Task
    """The normal task the organism learns."""
    mechanisms: list[Mechanism] = []
    """Planted (or, for controls, unplanted) behaviours; lookup task only."""
    model: ModelShape = ModelShape()
    """Architecture."""
    train: TrainConfig = TrainConfig()
    """Optimiser settings."""

    @model_validator(mode="after")
    def _mechanisms_fit_task(self) -> OrganismSpec:
        kinds = [m.kind for m in self.mechanisms]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"mechanisms: each kind at most once, got {kinds}")
        if self.mechanisms and self.task.kind != "lookup":
            raise ValueError(
                f"mechanisms: planted triggers and markers need task kind 'lookup', not {self.task.kind!r}"
            )
        if sum(m.rate for m in self.mechanisms) > 0.8:
            raise ValueError("mechanisms: rates add up to more than 0.8; keep clean contexts")
        t = self.task
        if isinstance(t, LookupTask):
            if t.min_len > t.max_len:
                raise ValueError(f"task.min_len ({t.min_len}) > task.max_len ({t.max_len})")
            need = 1 + sum(m.n_tokens if m.kind == "trigger" else 1 for m in self.mechanisms)
            if t.min_len < need:
                raise ValueError(f"task.min_len must be >= {need}: the subject plus room for every mechanism's tokens")
        if isinstance(t, InductionTask) and t.min_repeat > t.max_repeat:
            raise ValueError(f"task.min_repeat ({t.min_repeat}) > task.max_repeat ({t.max_repeat})")
        if isinstance(t, InductionTask) and t.max_repeat > t.n_symbols:
            raise ValueError("task.max_repeat must be <= task.n_symbols (tokens do not repeat)")
        if isinstance(t, CategoriesTask) and t.min_pairs > t.max_pairs:
            raise ValueError(f"task.min_pairs ({t.min_pairs}) > task.max_pairs ({t.max_pairs})")
        if isinstance(t, SuperpositionTask) and self.model.d_model >= t.n_features:
            raise ValueError(
                f"superposition needs more features than dimensions: model.d_model ({self.model.d_model}) "
                f"must be < task.n_features ({t.n_features}); lower model.d_model or raise task.n_features"
            )
        if isinstance(t, CompositionTask) and (self.model.n_layers < 2 or self.model.attn_only):
            raise ValueError(
                "composition needs model.n_layers >= 2 and MLPs (model.attn_only: false): step 1 is computed "
                "by an MLP and read by a head of a later layer"
            )
        return self

    def spec_hash(self) -> str:
        """Hash of everything that changes the weights (not name or description)."""
        payload = self.model_dump(mode="json", exclude={"name", "description"})
        payload["trainer_version"] = TRAINER_VERSION
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def organism_id(self) -> str:
        """Opaque id an agent sees: says nothing about what was planted."""
        return f"org-{self.spec_hash()[:10]}"

    def with_seed(self, seed: int) -> OrganismSpec:
        """The same spec with another seed (a different organism, hash and cache folder)."""
        return self.model_copy(update={"seed": seed})


def validate_mapping(model: type[M], data: object, source: str, what: str, needs: str, hints: dict[str, str]) -> M:
    """Parsed YAML validated as `model` (a spec type); errors name the file, each bad field and, by pydantic
    error type, what to do (`hints`). `what` names the spec ("organism spec"), `needs` its required keys."""
    article = "an" if what[0] in "aeiou" else "a"
    if not isinstance(data, dict):
        raise UserError(f"{source}: {article} {what} is a YAML mapping with {needs}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{source}: invalid {what}\n" + "\n".join(validation_lines(e, hints))) from None


def read_yaml(path: Path, what: str) -> object:
    """A user's YAML file, parsed; unreadable, non-text or invalid YAML is a UserError naming the file."""
    import yaml

    text = read_text_file(path, "spec file", f"{what} in YAML (see experiments/organisms/specs/)")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {e}") from None


def parse_spec(data: object, source: str) -> OrganismSpec:
    """Validate parsed YAML; errors name each bad field and the file it came from."""
    kinds = "task kinds: lookup, induction, categories, superposition, composition; mechanism kinds: trigger, marker"
    return validate_mapping(
        OrganismSpec,
        data,
        source,
        "organism spec",
        "at least `name` and `task`",
        {
            "extra_forbidden": "unknown field (check the spelling; see experiments/organisms/specs/*.yaml)",
            "union_tag_invalid": f"unknown kind ({kinds})",
            "union_tag_not_found": f"missing `kind` ({kinds})",
        },
    )


def load_spec(path: Path) -> OrganismSpec:
    """Read and validate a spec file."""
    return parse_spec(read_yaml(path, "an organism spec"), str(path))
