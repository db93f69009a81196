"""Ground truth of a trained organism, as measured after training.

Everything here is a measurement on held-out data, never a restatement of the
spec: a head is named an induction head because ablating it was seen to break
induction, a layer is named for the marker direction because steering there was
seen to undo the switched behaviour. The manifest sits beside the checkpoint
and is read by the benchmark, never by an agent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tools.errors import UserError

MANIFEST_FILE = "manifest.json"


class Check(BaseModel):
    """One acceptance check of the trained organism."""

    name: str
    """What was checked."""
    measured: float
    """The measured value."""
    op: Literal[">=", "<="]
    """How `measured` is compared with `threshold`."""
    threshold: float
    """The bound it must meet."""
    passed: bool
    """Whether it met it."""
    hint: str = ""
    """When it failed: what to change in the spec to pass it (more steps, width, a rate); empty when it
    passed, and in manifests written before hints existed."""


class HeadScore(BaseModel):
    """One attention head, with pattern scores and the effect of ablating it."""

    layer: int
    """Layer index."""
    head: int
    """Head index within the layer."""
    hook: str
    """TransformerLens hook of the head's output, e.g. `blocks.1.attn.hook_z`."""
    score: float | None
    """Mean attention to the position the head type predicts (previous token / induction
    target); None where no pattern is scored (heads listed for an ablation only)."""
    ablated_accuracy: float
    """With this head's output zero-ablated: held-out task accuracy (induction), or the
    trigger -> target rate (trigger heads)."""


class DirectionLayer(BaseModel):
    """A difference-of-means direction (marker minus no-marker) at one hook, at the query position."""

    layer: int
    """Layer of the residual stream hook."""
    hook: str
    """e.g. `blocks.0.hook_resid_mid`."""
    separation_accuracy: float
    """Held-out accuracy of thresholding the projection on the direction at the midpoint."""
    steered_switch_rate: float
    """Switched-behaviour rate on marked contexts after subtracting the direction."""
    steered_task_accuracy: float
    """Share of marked contexts answered with the normal mapping after subtracting it."""


class SequenceResponse(BaseModel):
    """The measured response to one near-miss of a trigger (or the trigger itself), inserted where a
    trigger goes in held-out contexts."""

    tokens: list[str]
    """The inserted tokens, consecutive, in order."""
    relation: Literal["trigger", "sub-sequence", "gapped sub-sequence", "reordering", "other"]
    """How it relates to the planted trigger: the trigger; a proper contiguous sub-sequence; a
    sub-sequence with a gap (tokens dropped from inside); a reordering of all its tokens; or
    "other" (a one-token drop of a firing sequence, measured to decide minimality)."""
    target_rate: float
    """Share of the contexts answered with the target token (as `trigger_rate` measures it)."""
    false_fire_rate: float
    """Share answered with the target where the normal answer is not the target."""
    trained_negative: bool
    """Training showed it as a must-not-fire context."""


class TriggerTruth(BaseModel):
    """A backdoor trigger (or, unplanted, the same tokens as a control)."""

    kind: Literal["trigger"] = "trigger"
    planted: bool
    """Whether training made the trigger change the output."""
    tokens: list[str]
    """The trigger, consecutive tokens in order."""
    target_token: str
    """The output the trigger forces when planted."""
    trigger_rate: float
    """Share of held-out trigger contexts whose next-token argmax is the target."""
    chance_rate: float
    """Share of those contexts whose normal answer is the target anyway."""
    false_fire_rate: float
    """Share of trigger-free contexts answered with the target when it is not the right answer."""
    partial_trigger_rate: float | None
    """Same, for the worst of the incomplete or reordered triggers in `variants` (the highest
    `false_fire_rate` among them; multi-token triggers only)."""
    minimal_sequences: list[list[str]] | None = None
    """The minimal sufficient sequences measured: among the trigger, its sub-sequences and its
    reorderings, those answered with the target at >= the trigger-rate threshold (0.95) whose every
    one-token drop falls below it; shortest first. The planted `tokens` when training planted what
    was meant; empty for a control. None in manifests written before it was measured."""
    variants: list[SequenceResponse] = []
    """The trigger and each sub-sequence, gapped sub-sequence and reordering, with its measured response."""
    at_chance: bool
    """trigger_rate is within sampling error of chance_rate (what a control must show)."""
    heads: list[HeadScore]
    """Every head, with the trigger rate when it is ablated (in `ablated_accuracy`)."""


class MarkerTruth(BaseModel):
    """A context marker that switches behaviour (or, unplanted, the same token as a control)."""

    kind: Literal["marker"] = "marker"
    planted: bool
    """Whether training made the marker switch the behaviour."""
    token: str
    """The marker token."""
    behaviour: str
    """What switches."""
    switch_rate: float
    """Share of held-out marked contexts answered with the switched mapping."""
    clean_switch_rate: float
    """Share of unmarked contexts answered with the switched mapping."""
    chance_rate: float
    """Rate of a uniformly random answer matching the switched mapping."""
    at_chance: bool
    """switch_rate is within sampling error of chance (what a control must show)."""
    direction_layers: list[DirectionLayer]
    """Every residual hook scanned, with separation and steering measurements."""
    near_miss_switch_rates: dict[str, float] = {}
    """Each other content token, put in the marker's place in held-out marked contexts (so no marker is
    present) -> share answered with the switched mapping. Empty in manifests written before it was measured."""
    hooks: list[str]
    """Hooks whose direction separates (>= 0.95 held-out) and where subtracting it at the
    query position undoes >= 80% of the switch (empty for a control)."""
    layers: list[int]
    """The layers of those hooks."""


class InductionHead(BaseModel):
    """One attention head of an induction organism: its attention patterns and what mean-ablating it costs."""

    layer: int
    """Layer index."""
    head: int
    """Head index within the layer."""
    induction_score: float
    """Mean attention from second-copy positions to the token after the same token's earlier occurrence."""
    previous_token_score: float
    """Mean attention from each position to the one before it."""
    reach: float
    """Mean attention from second-copy positions to anywhere before the second copy (copying heads need it)."""
    ablated_accuracy: float
    """Held-out copying accuracy with this head mean-ablated at every position."""
    second_copy_ablated_accuracy: float
    """... mean-ablated only at the second copy (where induction heads act)."""
    earlier_ablated_accuracy: float
    """... mean-ablated only before the second copy (where heads feeding the induction heads write)."""


class InductionTruth(BaseModel):
    """Induction circuit: heads that copy at the second copy, fed by heads writing at the earlier positions.

    `method` says how the heads were found. "ablation" (experiments/organisms/verify_induction.py): in any
    layers, by greedy group mean-ablation on held-out repeated sequences, each side of the repeat apart,
    against as many random heads. "pattern" (manifests written before it): attention-pattern scores with a
    zero-ablation check, which only recognised a two-layer circuit."""

    kind: Literal["induction"] = "induction"
    method: Literal["pattern", "ablation"] = "pattern"
    """How the heads below were found (see the class docstring)."""
    baseline_accuracy: float
    """Held-out accuracy on the predictable second copy."""
    induction_heads: list[HeadScore]
    """By "ablation": the copying heads. Among heads that read across the repeat (attention >= 0.3 from the
    second copy to before it), the smallest set found whose mean-ablation at the second copy leaves <= 20% of
    the baseline accuracy (each head alone may cost little: such heads are often redundant); `score` is its
    attention to the token after the earlier copy, `ablated_accuracy` the accuracy with it alone ablated
    everywhere. By "pattern": heads with induction score >= 0.4."""
    previous_token_heads: list[HeadScore]
    """By "ablation": the heads feeding the copying heads. The smallest set found whose mean-ablation before the
    second copy (prefix and first copy, where the copying heads read) leaves <= 50% of the baseline accuracy;
    `score` is its previous-token attention (low where the role is spread over several preceding tokens).
    By "pattern": heads with previous-token score >= 0.4 whose zero-ablation costs >= 0.2 accuracy."""
    all_heads: list[HeadScore]
    """Every head, scored as an induction head."""
    induction_group_ablated_accuracy: float
    """Accuracy with the induction heads ablated together (by "ablation": at the second copy only)."""
    control_group_ablated_accuracy: float
    """Accuracy with as many other heads ablated in the same way, mean of 5 random draws (the control)."""
    previous_group_ablated_accuracy: float | None = None
    """By "ablation": accuracy with the previous-token heads ablated together before the second copy."""
    previous_control_ablated_accuracy: float | None = None
    """By "ablation": the same with as many other heads, mean of 5 random draws."""
    heads: list[InductionHead] = []
    """By "ablation": every head's patterns and single-head ablation costs, by side (empty for "pattern")."""


class Category(BaseModel):
    """A named token category."""

    name: str
    """Category id (neutral)."""
    tokens: list[str]
    """Member tokens."""
    label_token: str
    """The token that follows any member."""


class CategoriesTruth(BaseModel):
    """Token categories the task requires the model to represent."""

    kind: Literal["categories"] = "categories"
    categories: list[Category]
    """Ground-truth categories."""
    decodability: dict[str, float]
    """Hook -> held-out nearest-class-mean accuracy of the category at member positions."""


class SuperpositionFeature(BaseModel):
    """One ground-truth feature of a superposition organism, with the direction measured for it."""

    name: str
    """Feature id (neutral), e.g. `feature_3`."""
    token: str
    """The input token that puts the feature into a context."""
    output_token: str
    """The output token that names it."""
    direction: list[float]
    """Its direction w_j at the truth hook: the coefficient of the feature in the held-out linear fit
    activations ~ sum_j f_j w_j + b (not normalised; rounded to 5 decimals)."""
    norm: float
    """|w_j|."""
    max_abs_cos: float
    """Largest |cos| between w_j and another feature's direction: its worst interference."""
    recall: float
    """Share of held-out contexts holding it whose top-k outputs (k = the set size) include its output token."""
    false_positive_rate: float
    """Share of held-out contexts without it whose top-k outputs include its output token."""
    represented: bool
    """The model reads it out: recall - false_positive_rate >= 0.8 (the benchmark scores only these)."""
    insert_rate: float
    """Adding w_j at the truth hook (query position) to contexts without it puts its output token into the
    top k+1 outputs this often (the causal test of the direction)."""
    remove_rate: float
    """Subtracting w_j from contexts holding it takes its output token out of the top k this often."""


class SuperpositionTruth(BaseModel):
    """Sparse features stored in superposition: more feature directions than residual dimensions."""

    kind: Literal["superposition"] = "superposition"
    hook: str
    """TransformerLens hook where the features are measured (the most linear of the residual hooks at the
    query position), e.g. `blocks.0.hook_resid_mid`."""
    position: int
    """The token position (the `<q>` position, the same in every context)."""
    d_model: int
    """Dimensions at the hook."""
    n_features: int
    """Ground-truth features (see `features` for which the model represents)."""
    features_per_dimension: float
    """n_features / d_model (> 1: they cannot all be orthogonal)."""
    r2: float
    """Held-out R^2 of the linear fit activations ~ sum_j f_j w_j + b at `hook` (fit on one half of the
    contexts, measured on the other)."""
    r2_by_hook: dict[str, float]
    """The same at every residual hook scanned at the query position."""
    bias: list[float]
    """b of the fit (the activation with no feature present)."""
    mean_abs_cos: float
    """Mean |cos| between distinct feature directions: how much they interfere."""
    max_abs_cos: float
    """Largest |cos| between distinct feature directions."""
    welch_bound: float
    """The least max |cos| any n_features directions in d_model dimensions can have, for comparison."""
    set_accuracy: float
    """Share of held-out contexts whose top-k outputs are exactly the features present."""
    insert_rate: float
    """Mean over represented features of `SuperpositionFeature.insert_rate`."""
    control_insert_rate: float
    """The same with a random direction of the same norm in place of w_j (the control)."""
    remove_rate: float
    """Mean over represented features of `SuperpositionFeature.remove_rate`."""
    features: list[SuperpositionFeature]
    """Every ground-truth feature, in feature order."""


class CompositionComponent(BaseModel):
    """One component of a composition organism, with what mean-ablating it at each side costs each query kind."""

    name: str
    """`L1H2` for a head, `MLP0` for an MLP layer."""
    layer: int
    """Layer index."""
    head: int | None
    """Head index; None for an MLP layer."""
    hook: str
    """Its output hook: `blocks.L.attn.hook_z` or `blocks.L.hook_mlp_out`."""
    reach: float | None
    """Heads: attention from the predicting position to the key-value context (None for MLPs)."""
    lookup_score: float | None
    """Heads: attention from the predicting position of two-step queries to the queried key and its value."""
    previous_token_score: float | None
    """Heads: attention from each value in the context to its key, the token before it (None for MLPs)."""
    query_ablated: dict[str, float]
    """Query kind (`step1`, `step2`, `both`) -> held-out accuracy with it mean-ablated at the query's positions."""
    context_ablated: dict[str, float]
    """The same, mean-ablated only at the context's positions."""


class CompositionTruth(BaseModel):
    """A two-step lookup (A -> B by a fixed table of two tokens, B -> C by finding B in the context), with the
    components measured to carry each step (experiments/organisms/verify_composition.py): step 1 by mean-ablation
    of MLP layers at the query and by patching their output, step 2 by mean-ablation of heads at the query
    (lookup) and in the context (feeding), each against as many other components of the same kind."""

    kind: Literal["composition"] = "composition"
    step1_accuracy: float
    """Held-out accuracy of `r m a` -> the key f(a, m) (step 1 alone)."""
    step2_accuracy: float
    """Held-out accuracy of `<q> m x` -> x's value in the context (step 2 alone, the key named)."""
    both_accuracy: float
    """Held-out accuracy of `<q> m a` -> the value of f(a, m) (both steps)."""
    step1_mlp_layers: list[int]
    """Step 1: the smallest set of MLP layers found whose mean-ablation at the query leaves <= 20% of step-1
    accuracy."""
    step1_ablated_accuracy: float
    """Step-1 accuracy with them ablated at the query."""
    step1_control_ablated_accuracy: float
    """The same with as many other MLP layers ablated (the control)."""
    step1_patch_switch_rate: float
    """Share of two-step answers that become the value of the patched key f(a', m') when the step-1 MLPs'
    output at the predicting position comes from a query with another a', m'."""
    step1_patch_key_switch_rate: float
    """The same on step-1 queries: share answered with the patched key."""
    step1_patch_control_switch_rate: float
    """Two-step switch rate when the other MLP layers are patched instead (the control)."""
    lookup_heads: list[HeadScore]
    """Step 2, the heads that find the key: among heads attending >= 0.3 from the predicting position to the
    queried key and its value, the smallest set found whose mean-ablation at the query leaves <= 20% of two-step
    accuracy. `score` is that attention; `ablated_accuracy` the two-step accuracy with the head alone ablated at
    the query."""
    lookup_ablated_accuracy: float
    """Two-step accuracy with the lookup heads ablated together at the query."""
    lookup_step2_ablated_accuracy: float
    """Step-2-alone accuracy (the key named outright) with the lookup heads ablated together at the query."""
    lookup_control_ablated_accuracy: float
    """Step-2-alone accuracy with as many other heads that no step names ablated there instead (mean of up to 5
    draws). The control is scored on step-2-alone queries because at the query other heads bring step 1's inputs
    (m and a) to the predicting position: ablating them costs two-step answers by breaking step 1, which says
    nothing about the lookup."""
    feeding_heads: list[HeadScore]
    """Step 2, the heads that prepare the context for the lookup: the smallest set found whose mean-ablation in
    the context only leaves <= 50% of two-step accuracy. `score` is the previous-token attention (value to its
    key); `ablated_accuracy` the two-step accuracy with the head alone ablated in the context."""
    feeding_ablated_accuracy: float
    """Two-step accuracy with the feeding heads ablated together in the context."""
    feeding_control_ablated_accuracy: float
    """The same with as many other heads that no step names (mean of up to 5 draws)."""
    step1_accuracy_without_step2_heads: float
    """Step-1 accuracy with the lookup heads (at the query) and feeding heads (in the context) ablated."""
    step2_accuracy_without_step2_heads: float
    """Step-2-alone accuracy with the same heads ablated."""
    components: list[CompositionComponent]
    """Every head and MLP layer, with its single ablations at each side."""


Mechanism = Annotated[
    TriggerTruth | MarkerTruth | InductionTruth | CategoriesTruth | SuperpositionTruth | CompositionTruth,
    Field(discriminator="kind"),
]


class Manifest(BaseModel):
    """Everything known to be true of a trained organism."""

    name: str
    """Spec name."""
    organism_id: str
    """Opaque id (what agents see)."""
    spec_hash: str
    """Hash of the spec that produced it."""
    weights_hash: str
    """Hash of the saved weights."""
    task_kind: str
    """Task family."""
    task_description: str
    """The normal task, in words."""
    heldout_accuracy: float
    """Held-out accuracy on the normal task, in contexts without planted tokens."""
    mechanisms: list[Mechanism]
    """Planted mechanisms and controls, as measured."""
    checks: list[Check]
    """Acceptance checks."""
    verified: bool
    """Every check passed."""
    train_seconds: float
    """Wall-clock training time."""
    train_steps: int
    """Optimiser steps."""
    final_loss: float
    """Training loss at the last step."""
    seed: int
    """Spec seed."""

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def save(self, folder: Path) -> None:
        (folder / MANIFEST_FILE).write_text(self.model_dump_json(indent=2))


def load_manifest(folder: Path) -> Manifest:
    """Read `manifest.json` from a trained organism's folder."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise UserError(f"{folder} has no {MANIFEST_FILE}: is it a trained organism folder?")
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except (ValueError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is corrupt ({e}); train the organism again") from None
