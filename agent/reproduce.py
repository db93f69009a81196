"""Reproduce a claim: run its key experiment again, on the claim's component, and judge it
by the criterion it was registered with.

The experiment stored in memory is the template (prompts, metric, controls,
seed); the claim's structured component is written into it, so what is tested
is what the claim says. A claim whose component was edited after the fact is
tested as edited, and fails if the edit is wrong.
"""

from __future__ import annotations

import copy
import re
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tools.errors import UserError

if TYPE_CHECKING:
    from memory.records import Claim
    from memory.store import MemoryStore
    from tools.target import Target


@dataclass
class Reproduction:
    """The outcome of running a claim's experiment again."""

    claim_id: str
    """The claim."""
    holds: bool
    """The criterion is met again and the component agrees with what was measured (agent.consistency)."""
    outcome: str
    """supported / refuted / inconclusive / error, by the claim's own criterion (refuted when the
    component contradicts what was measured)."""
    why: str
    """Each condition with the value measured now."""
    tool: str
    """The tool that ran."""
    input: dict[str, Any]
    """Its input, with the claim's component written in."""
    summary: str
    """The tool's one-line summary."""
    effect: float | None
    """Effect measured now."""
    control: float | None
    """Control measured now."""
    original_effect: float | None
    """Effect when the claim was made."""
    original_control: float | None
    """Control when the claim was made."""
    model: str
    """The model spec it ran on."""
    note: str
    """Anything the reviewer should know (e.g. a component that could not be substituted)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hook_at_layer(hook: str, layer: int) -> str:
    return re.sub(r"^blocks\.\d+\.", f"blocks.{layer}.", hook)


def with_component(tool: str, payload: dict[str, Any], claim: Claim) -> tuple[dict[str, Any], str]:
    """(the experiment's input with the claim's component written in, a note when it could not be)."""
    p, comp, mech = copy.deepcopy(payload), claim.component, claim.mechanism
    if mech == "head" and comp.layer is not None and comp.head is not None and tool == "ablate":
        me = {"kind": "head", "layer": comp.layer, "head": comp.head}
        p["components"] = [me]
        p["background"] = [b for b in p.get("background", []) if b != me]
    elif mech == "heads" and comp.heads and tool == "ablate":
        p["components"] = [{"kind": "head", "layer": l, "head": h} for l, h in comp.heads]
    elif mech in ("trigger", "context_marker") and comp.tokens and tool == "scan":
        p["insertions"] = [list(comp.tokens)]
    elif mech == "direction" and tool == "steer" and comp.hook:
        p["hook"] = comp.hook if comp.layer is None else _hook_at_layer(comp.hook, comp.layer)
    elif mech == "feature" and comp.feature is not None:
        if tool == "steer":
            p["feature"] = comp.feature
        elif tool == "ablate" and comp.sae_id:
            p["components"] = [{"kind": "sae_feature", "sae": comp.sae_id, "feature": comp.feature}]
        else:
            return p, f"the component was not written into a {tool} input; the experiment runs as recorded"
    else:
        return p, f"mechanism {mech or '(none)'!r} with tool {tool}: the experiment runs as recorded"
    return p, ""


def reproduce(
    store: MemoryStore, claim_id: str, model: str | None = None, target: Target | None = None
) -> Reproduction:
    """Run the claim's key experiment again and judge it by the claim's registered criterion."""
    from agent.actions import Criterion, judge
    from agent.consistency import mismatches, overrule
    from agent.run_folder import RunFolder
    from agent.targets import load
    from memory.records import Claim, ExperimentRecord
    from tools import registry
    from tools.directions import saving_in

    claim = store.get(claim_id)
    if not isinstance(claim, Claim):
        raise UserError(f"no claim with id {claim_id!r}; list claims with `interp review list`")
    if not claim.experiment_ids:
        raise UserError(f"claim {claim_id} names no experiment to reproduce")
    exp = store.get(claim.experiment_ids[0])
    if not isinstance(exp, ExperimentRecord):
        raise UserError(
            f"claim {claim_id}'s experiment {claim.experiment_ids[0]} is not in this memory; "
            "import the run's memory export, or use the memory the run wrote to"
        )
    if not claim.criterion:
        raise UserError(
            f"claim {claim_id} was stored without its criterion, so there is nothing to judge a "
            "reproduction by; re-run the investigation"
        )
    spec = model or exp.model_spec
    if not spec:
        raise UserError(f"claim {claim_id} does not say how its model was loaded; give --model SPEC")
    if target is None:
        target = load(spec)
    if claim.weights_hash and target.weights_hash != claim.weights_hash:
        raise UserError(
            f"{spec} has weights {target.weights_hash[:12]}, but the claim was made on "
            f"{claim.weights_hash[:12]}: reproduce on the same model (--model)"
        )
    payload, note = with_component(exp.tool, exp.input, claim)
    # A direction the claim names was saved in its run's folder (tools/directions.py looks there first).
    with saving_in(RunFolder(claim.run_dir).directions) if claim.run_dir else nullcontext():
        result = registry.call(target, exp.tool, payload)
    data = result.model_dump(mode="json")
    outcome, why = judge(Criterion.model_validate(claim.criterion), data)
    # the same check the judge applies: the numbers may pass while the component names the wrong thing
    outcome, why = overrule(outcome, why, mismatches(claim.component, exp.tool, payload, data))
    holds = outcome == "supported"
    return Reproduction(
        claim_id=claim.id,
        holds=holds,
        outcome=outcome,
        why=why,
        tool=exp.tool,
        input=payload,
        summary=result.summary,
        effect=data.get("effect"),
        control=data.get("control"),
        original_effect=claim.effect,
        original_control=claim.control,
        model=spec,
        note=note,
    )
