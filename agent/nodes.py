"""The graph's nodes: plain functions of (state, runtime) that return partial state.

    orient -> hypothesize -> experiment <-> judge -> conclude -> review -> report

Every node starts by bringing the live budget into state (so a checkpoint
always holds the time spent so far). Side effects are idempotent: memory ids
are content hashes and result files are keyed by experiment id, so a node that
re-runs after a kill writes the same records again instead of new ones.
"""

from __future__ import annotations

import json
import traceback
from typing import TYPE_CHECKING, Any, Literal, cast

from agent import criteria
from agent.actions import ActionError, Call, Conclude, capped_tier, parse_action
from agent.actions import judge as judge_result
from agent.brains.base import BrainError, BudgetLeft, View
from agent.consistency import mismatches, overrule
from agent.context import RunContext
from agent.paths import confine, resolve, user_refs
from agent.run_folder import RunFolder
from agent.state import (
    ErrorEntry,
    HypothesisState,
    InvestigationState,
    LastRun,
    LineState,
    Observation,
    QueueItem,
    RunnableItem,
)
from memory.records import Attempt, Claim, ExperimentRecord, Hypothesis, IncidentalFinding
from tools.deadline import DeadlineReached, deadline
from tools.directions import saving_in
from tools.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from langgraph.runtime import Runtime
    from langgraph.types import Command

    from agent.actions import HypothesisPlan
    from agent.budget import Estimate


def _ctx(runtime: Runtime[RunContext]) -> RunContext:
    return runtime.context


def _budget_view(ctx: RunContext) -> BudgetLeft:
    b = ctx.budget
    left = None if b.max_forward_tokens is None else b.max_forward_tokens - b.spent_forward_tokens
    return {
        "share_used": round(b.share_used(), 4),
        "seconds_left": round(b.seconds_left(), 1),
        "forward_tokens_left": left,
        "usd_spent": round(b.spent_usd, 4),
    }


def _error(state: InvestigationState, what: str, message: str, ref: str = "") -> list[ErrorEntry]:
    """A new error entry, as the update that appends it (the state's reducer appends)."""
    return [{"step": state.get("step", 0), "what": what, "message": message, "ref": ref}]


def _show(ctx: RunContext, state: InvestigationState, current: str = "") -> None:
    if ctx.display is not None:
        ctx.display.update(state, ctx.budget, current)


# -- orient ------------------------------------------------------------------


def _model_view(ctx: RunContext) -> dict[str, Any]:
    """What a brain may know of the model: shapes and vocabulary, not its spec, path or name."""
    info = ctx.target.info()
    view = {
        k: info[k]
        for k in ("model_id", "n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx", "attn_only")
    }
    tok = ctx.target.model.tokenizer
    special = set(tok.all_special_tokens)
    view["vocab"] = (
        [t for t in tok.convert_ids_to_tokens(list(range(len(tok)))) if t not in special] if len(tok) <= 4096 else None
    )
    view["word_level"] = bool(view["vocab"]) and all(" " not in t and "Ġ" not in t for t in view["vocab"])
    return view


def _recall(ctx: RunContext) -> dict[str, list[dict[str, str]]]:
    """What memory holds about exactly these weights: the same model id with other weights (a retrained
    organism, another revision) is another model, and records that name no weights are left out."""
    if ctx.memory is None:
        return {"accepted": [], "rejected": [], "tried": []}
    mid, run, weights = ctx.target.model_id, ctx.settings.run_id, ctx.target.weights_hash
    claims = [c for c in ctx.memory.list(kind="claim", model=mid, weights_hash=weights) if isinstance(c, Claim)]
    hyps = [h for h in ctx.memory.list(kind="hypothesis", model=mid, weights_hash=weights) if isinstance(h, Hypothesis)]
    return {
        "accepted": [{"id": c.id, "statement": c.statement} for c in claims if c.status == "accepted"][:50],
        "rejected": [{"id": c.id, "statement": c.statement} for c in claims if c.status == "rejected"][:50],
        "tried": [
            {"id": h.id, "statement": h.statement, "status": h.status}
            for h in hyps
            if any(a.run_id != run for a in h.attempts)
        ][:50],
    }


# Prompts an investigation works with: more buy no better hypotheses, and every one of them is in
# each checkpoint of the state (a 100k-line --prompts file made every node write megabytes).
MAX_QUESTION_PROMPTS = 2048


def _sampled(question: dict[str, Any], seed: int) -> dict[str, Any]:
    """The question with each prompt set larger than MAX_QUESTION_PROMPTS cut to a seeded random sample
    (order kept); `<set>_given` records how many there were. The per-prompt answers, versus tokens and
    corrupted prompts keep the prompts they belong to."""
    import random

    from agent.question import PAIRED

    out = dict(question)
    for key in ("prompts", "positive", "negative"):
        items = out.get(key) or []
        if len(items) > MAX_QUESTION_PROMPTS:
            keep = sorted(random.Random(seed).sample(range(len(items)), MAX_QUESTION_PROMPTS))
            for k in [key, *(PAIRED if key == "prompts" else ())]:
                if out.get(k):
                    out[k] = [out[k][i] for i in keep]
            out[f"{key}_given"] = len(items)
    return out


def orient(state: InvestigationState, runtime: Runtime[RunContext]) -> InvestigationState:
    """Recall memory for this model, resolve the question's prompts, describe the model to the brain."""
    ctx = _ctx(runtime)
    question = dict(ctx.settings.question)
    if question["kind"] == "audit" and not question["prompts"]:
        usage = ctx.target.usage_prompts(256, ctx.settings.seed)
        if usage is None:
            raise UserError("this model ships no sample of its ordinary inputs: give --prompts FILE for the audit")
        question["prompts"] = usage
        question["prompts_source"] = "the model's usage sample"
    question = _sampled(question, ctx.settings.seed)
    recall = _recall(ctx)
    ctx.trace.write(
        "orient",
        model_id=ctx.target.model_id,
        question=question["text"],
        kind=question["kind"],
        recalled={k: len(v) for k, v in recall.items()},
        brain=ctx.brain.name,
    )
    return {
        "run_id": ctx.settings.run_id,
        "question": question,
        "model": _model_view(ctx),
        "recall": recall,
        "hypotheses": [],
        "observations": [],
        "claims": [],
        "incidental": [],
        "queue": [],
        "pending": None,
        "errors": [],
        "brain": {},
        "lines": {},
        "step": 0,
        "decisions": 0,
        "stop_reason": "",
        "summary": "",
        "reviews": [],
    }


# -- hypothesize ---------------------------------------------------------------


GRACE_SHARE = 0.1
"""Share of the budget a line that used its own share may go on for, acting on its last exploratory results."""


def _pivot(state: InvestigationState, ctx: RunContext) -> tuple[dict[str, LineState], list[QueueItem]]:
    """Fail fast: abandon lines of attack that used their share without a supported hypothesis."""
    lines = {k: LineState(**v) for k, v in state.get("lines", {}).items()}
    queue = list(state.get("queue", []))
    used = ctx.budget.share_used()
    # A line whose exploratory call just finished may still act on what it paid for (under a short budget
    # or a loaded CPU one scan can be most of the share, and a line often confirms a find with one more
    # cheap call before it states the hypothesis): for GRACE_SHARE more of the budget, and only while each
    # new result is its own exploratory call's.
    last = state.get("observations", [])[-1:]
    fresh = {o["line"] for o in last if not o["hypothesis_id"]}
    for name, info in lines.items():
        supported = any(h["line"] == name and h["status"] == "supported" for h in state.get("hypotheses", []))
        if info["status"] != "active" or supported or used - info["started"] < ctx.settings.pivot_share:
            continue
        began = info.get("grace")
        if name in fresh and (began is None or (not isinstance(began, str) and used - began < GRACE_SHARE)):
            info["grace"] = used if began is None else began
            continue
        info["status"] = "abandoned"
        queue = [a for a in queue if a["line"] != name]
        ctx.trace.write(
            "pivot",
            line=name,
            share_used=round(used, 3),
            why=f"no supported hypothesis after {ctx.settings.pivot_share:.0%} of the budget",
        )
    return lines, queue


def _cites(plan: HypothesisPlan, state: InvestigationState) -> bool:
    ids = {o["id"] for o in state.get("observations", [])}
    return any(i in plan.new_evidence for i in ids)


def _skip_reason(plan: HypothesisPlan, hyp_id: str, state: InvestigationState, ctx: RunContext) -> str:
    """Why memory says not to test this again ('' when it may be tested)."""
    if ctx.memory is None or _cites(plan, state):
        return ""
    stored = ctx.memory.get(hyp_id)
    earlier = [a for a in getattr(stored, "attempts", []) if a.run_id != ctx.settings.run_id]
    if earlier:
        return (
            f"already tried in {earlier[-1].run_id} ({earlier[-1].outcome}); cite an experiment id of this run "
            "in new_evidence to test it again"
        )
    for claim, dist in ctx.memory.search(
        plan.statement,
        kind="claim",
        model=ctx.target.model_id,
        weights_hash=ctx.target.weights_hash,
        status="rejected",
        n=3,
    ):
        if dist <= 0.02 and isinstance(claim, Claim):
            return f"a reviewer rejected {claim.id} ({claim.statement!r}); cite new evidence to test it again"
    return ""


REFUSED = "refused at registration"


def _register(
    actions: list[dict[str, Any]], state: InvestigationState, ctx: RunContext
) -> tuple[list[HypothesisState], list[QueueItem], list[ErrorEntry], dict[str, LineState]]:
    """Validate a decision's actions: hypotheses are registered, calls queued, bad ones become errors."""
    hyps = list(state.get("hypotheses", []))
    queue: list[QueueItem] = []
    errors: list[ErrorEntry] = []  # only the new ones (the state's reducer appends)
    lines = {k: LineState(**v) for k, v in state.get("lines", {}).items()}
    known = {h["id"] for h in hyps if not h["note"].startswith(REFUSED)}
    for raw in actions:
        ref = raw.get("ref", "") if isinstance(raw, dict) else ""
        try:
            action = parse_action(raw)
        except ActionError as e:
            errors.append({"step": state["step"], "what": "action", "message": str(e), "ref": str(ref)})
            ctx.trace.write("error", what="action", message=str(e), action=raw)
            continue
        line = getattr(action, "line", "")
        if line and line in lines and lines[line]["status"] == "abandoned":
            errors.append(
                {
                    "step": state["step"],
                    "what": "action",
                    "ref": action.ref,
                    "message": f"line of attack {line!r} was abandoned (fail fast); try another",
                }
            )
            continue
        if line and line not in lines:
            lines[line] = {"started": round(ctx.budget.share_used(), 4), "status": "active"}
        if isinstance(action, Conclude):
            queue.append({"kind": "conclude", "summary": action.summary, "ref": action.ref, "line": ""})
        elif isinstance(action, Call):
            queue.append(
                {
                    "kind": "call",
                    "call": {"tool": action.call.tool, "input": action.call.input},
                    "hypothesis_id": "",
                    "line": line,
                    "ref": action.ref,
                }
            )
        else:
            for plan in action.hypotheses:
                hid = Hypothesis(
                    statement=plan.statement, model_id=ctx.target.model_id, weights_hash=ctx.target.weights_hash
                ).id
                if hid in known:
                    errors.append(
                        {
                            "step": state["step"],
                            "what": "hypothesis",
                            "ref": action.ref,
                            "message": f"hypothesis {hid} is already registered in this run",
                        }
                    )
                    continue
                hyps = [h for h in hyps if h["id"] != hid]  # one refused earlier may come back fixed
                if refused := criteria.refusal(plan):
                    msg = f"{REFUSED}: {refused}"
                    hyps.append(
                        {
                            "id": hid,
                            "plan": plan.model_dump(),
                            "line": line,
                            "ref": action.ref,
                            "status": "error",
                            "note": msg,
                            "experiment_id": "",
                        }
                    )
                    errors.append(
                        {
                            "step": state["step"],
                            "what": "hypothesis",
                            "ref": action.ref,
                            "message": f"hypothesis {hid} {msg}",
                        }
                    )
                    ctx.trace.write("error", what="hypothesis", hypothesis=hid, message=msg)
                    continue
                known.add(hid)
                skip = _skip_reason(plan, hid, state, ctx)
                hyps.append(
                    {
                        "id": hid,
                        "plan": plan.model_dump(),
                        "line": line,
                        "ref": action.ref,
                        "status": "skipped" if skip else "open",
                        "note": skip,
                        "experiment_id": "",
                    }
                )
                ctx.trace.write(
                    "hypothesis",
                    id=hid,
                    statement=plan.statement,
                    test=plan.test.tool,
                    criterion=plan.criterion.describe(),
                    skipped=skip or None,
                )
                if skip:
                    continue
                if ctx.memory is not None:
                    ctx.memory.put(
                        Hypothesis(
                            statement=plan.statement,
                            model_id=ctx.target.model_id,
                            weights_hash=ctx.target.weights_hash,
                            planned_test=json.dumps(plan.test.model_dump()),
                            success_criterion=plan.criterion.describe(),
                        )
                    )
                queue.append(
                    {
                        "kind": "test",
                        "call": {"tool": plan.test.tool, "input": plan.test.input},
                        "hypothesis_id": hid,
                        "line": line,
                        "ref": action.ref,
                    }
                )
    return hyps, queue, errors, lines


Next = Literal["experiment", "conclude", "hypothesize"]


def _route_queue(queue: list[QueueItem]) -> tuple[RunnableItem | None, Next]:
    if not queue:
        return None, "hypothesize"
    head = queue[0]
    return (None, "conclude") if head["kind"] == "conclude" else (head, "experiment")


def _go(update: InvestigationState) -> Command[Next]:
    """The update and where the graph goes next: conclude once there is a stop reason, else the queue's head
    decides (a test or call -> experiment, a conclusion -> conclude, nothing queued -> ask the brain)."""
    from langgraph.types import Command

    goto: Next = "conclude" if update.get("stop_reason") else _route_queue(update.get("queue", []))[1]
    return Command(goto=goto, update=update)


def hypothesize(state: InvestigationState, runtime: Runtime[RunContext]) -> Command[Next]:
    """Ask the brain for the next actions when nothing is queued; register hypotheses; route."""
    ctx = _ctx(runtime)
    step = state.get("step", 0) + 1
    lines, queue = _pivot(state, ctx)
    out: InvestigationState = {"step": step, "lines": lines, "queue": queue}
    if ctx.budget.exhausted():
        return _go({**out, "stop_reason": "budget spent", "pending": None})
    if queue:
        pending, _ = _route_queue(queue)
        return _go({**out, "pending": pending})
    if state.get("decisions", 0) >= ctx.settings.max_decisions:
        return _go(
            {
                **out,
                "stop_reason": f"{ctx.settings.max_decisions} brain decisions without concluding",
                "pending": None,
            }
        )
    view = View(_merged(state, out), ctx.run_dir, _budget_view(ctx), ctx.settings.pivot_share)
    _show(ctx, state, "brain deciding")
    try:
        decision = ctx.brain.decide(view, state.get("brain", {}))
    except BrainError as e:
        ctx.trace.write("error", what="brain", message=str(e))
        return _go(
            {
                **out,
                "errors": _error(state, "brain", str(e)),
                "stop_reason": f"brain failed: {e}",
                "pending": None,
            }
        )
    ctx.budget.charge(usd=decision.usd)
    ctx.trace.write(
        "decision",
        brain=ctx.brain.name,
        n_actions=len(decision.actions),
        note=decision.note,
        usd=decision.usd,
        tokens=decision.tokens,
        actions=decision.actions,
    )
    hyps, queue, errors, lines = _register(decision.actions, _merged(state, out), ctx)
    if not decision.actions:
        queue = [{"kind": "conclude", "summary": "the brain had nothing more to try", "ref": "", "line": ""}]
    pending, _ = _route_queue(queue)
    return _go(
        {
            **out,
            "hypotheses": hyps,
            "queue": queue,
            "errors": errors,
            "lines": lines,
            "pending": pending,
            "brain": decision.memory,
            "decisions": state.get("decisions", 0) + 1,
        }
    )


# -- experiment ----------------------------------------------------------------


def _estimate(ctx: RunContext, tool: str, payload: dict[str, Any]) -> tuple[Estimate, str, float]:
    """(Estimate, basis, extra seconds): forward tokens exactly, seconds from the measured speed."""
    from agent.budget import Estimate
    from tools import registry

    tokens = registry.estimate(ctx.target, tool, payload)
    if ctx.speed is None:
        return Estimate(seconds=0.0, forward_tokens=tokens), "no speed measured", 0.0
    extra = registry.extra_seconds(ctx.target, tool, payload)
    seconds, basis = ctx.speed.estimate(tool, tokens, extra)
    return Estimate(seconds=seconds, forward_tokens=tokens), basis, extra


def _mark(hyps: list[HypothesisState], hid: str, status: str, note: str, **changes: str) -> list[HypothesisState]:
    """The hypotheses with `hid`'s status and note (and experiment id) changed."""
    return [
        cast(HypothesisState, {**h, "status": status, "note": note, **changes}) if h["id"] == hid else h for h in hyps
    ]


def _merged(state: InvestigationState, update: InvestigationState) -> InvestigationState:
    """The state as it will be once `update` is applied (appended lists appended), for code that reads it
    before the graph does."""
    merged = cast(InvestigationState, {**state, **update})
    for key in ("observations", "errors"):  # the two keys with an append reducer
        if key in update:
            merged[key] = [*state.get(key, []), *update[key]]
    return merged


def experiment(state: InvestigationState, runtime: Runtime[RunContext]) -> InvestigationState:
    """Run the pending tool call under the budget and its deadline; store its result."""
    from tools import registry

    ctx = _ctx(runtime)
    item = state.get("pending")
    if item is None:  # routing sends here only with a pending call: a checkpoint that says otherwise is damaged
        raise RuntimeError("the experiment node ran with no pending call")
    tool, payload, hid = item["call"]["tool"], item["call"]["input"], item["hypothesis_id"]
    queue = state["queue"][1:]
    _show(ctx, state, f"{tool}" + (f" (testing {hid})" if hid else ""))
    est, basis, extra = None, "", 0.0
    try:
        payload = confine(tool, payload, ctx.run_dir, user_refs(ctx.settings.question))
        # Estimating tokenises the prompts: under the deadline too, or a huge prompt file overruns here.
        with deadline(ctx.budget.call_seconds(), on_check=ctx.heartbeat, clock=ctx.budget.clock):
            est, basis, extra = _estimate(ctx, tool, payload)
        refusal = _admit(ctx, tool, payload, est)
        if refusal:
            raise _Refused(f"{tool} refused: {refusal} (estimate from {basis})")
        ctx.trace.write(
            "call",
            tool=tool,
            hypothesis=hid or None,
            estimate_tokens=est.forward_tokens,
            estimate_seconds=round(est.seconds, 2),
            estimate_basis=basis,
            deadline_seconds=round(ctx.budget.call_seconds(), 2),
            input=payload,
        )
        # Directions the tool saves belong to this run (its folder), not to the working directory.
        with (
            deadline(ctx.budget.call_seconds(), on_check=ctx.heartbeat, clock=ctx.budget.clock),
            saving_in(RunFolder(ctx.run_dir).directions),
        ):
            result = registry.call(ctx.target, tool, payload)
    except (UserError, _Refused, DeadlineReached) as e:
        what = {_Refused: "refused", DeadlineReached: "deadline"}.get(type(e), "tool")
        return _failed(state, ctx, item, what, str(e), est)
    except Exception as e:  # noqa: BLE001  # a bug in a tool must end this call as an error state, not the whole run
        ctx.trace.write(
            "error", what="crash", tool=tool, type=type(e).__name__, traceback=traceback.format_exc(limit=-6)
        )
        return _failed(
            state,
            ctx,
            item,
            "crash",
            f"{tool} failed with {type(e).__name__}: {e} (a bug in the tool; the traceback is in trace.jsonl)",
            est,
        )
    if result.partial:
        ctx.budget.stopped_at_deadline += 1
    elif ctx.speed is not None:
        ctx.speed.observe(tool, result.cost.forward_tokens, result.cost.seconds, extra)
    ctx.budget.charge(forward_tokens=result.cost.forward_tokens, seconds=result.cost.seconds)
    data = result.model_dump(mode="json")
    record = ExperimentRecord(
        tool=tool,
        model_id=ctx.target.model_id,
        input=payload,
        summary=result.summary,
        effect=data.get("effect"),
        control=data.get("control"),
        forward_tokens=result.cost.forward_tokens,
        seconds=result.cost.seconds,
        run_id=ctx.settings.run_id,
        model_spec=ctx.settings.model,
    )
    RunFolder(ctx.run_dir).write_result(record.id, data)
    if ctx.memory is not None:
        ctx.memory.put(record)
    ctx.trace.write(
        "result",
        tool=tool,
        experiment=record.id,
        summary=result.summary,
        forward_tokens=result.cost.forward_tokens,
        seconds=result.cost.seconds,
    )
    obs: Observation = {
        "id": record.id,
        "step": state["step"],
        "tool": tool,
        "summary": result.summary,
        "effect": record.effect,
        "control": record.control,
        "forward_tokens": result.cost.forward_tokens,
        "seconds": result.cost.seconds,
        "hypothesis_id": hid,
        "line": item["line"],
        "ref": item["ref"],
    }
    return {
        "observations": [obs],
        "queue": queue,
        "pending": None,
        "last": {"experiment_id": record.id, "hypothesis_id": hid},
    }


# A tool that returns partial work at its deadline may start when this share of its estimate fits.
PARTIAL_ADMIT_SHARE = 0.5


def _admit(ctx: RunContext, tool: str, payload: dict[str, Any], est: Estimate) -> str | None:
    """Why the budget refuses the call, or None. A call whose tool stops with partial results at its
    deadline is admitted when half its estimate fits: the budget is used rather than left idle, and
    the deadline still holds it."""
    from dataclasses import replace

    from tools import registry

    spec = registry.get(tool)
    if spec.stops_with_partial(registry.validate(tool, payload)) and est.seconds > ctx.budget.call_seconds():
        half = replace(est, seconds=est.seconds * PARTIAL_ADMIT_SHARE)
        if ctx.budget.refusal(half) is None:
            ctx.trace.write(
                "admit_partial",
                tool=tool,
                estimate_seconds=round(est.seconds, 2),
                seconds_left=round(ctx.budget.seconds_left(), 2),
                why="runs until its deadline and returns the work done so far",
            )
            return None
    return ctx.budget.admit(est)


class _Refused(Exception):
    """A call the budget did not admit."""


def _failed(
    state: InvestigationState, ctx: RunContext, item: RunnableItem, what: str, message: str, est: Estimate | None
) -> InvestigationState:
    """The state after a call that was refused, stopped at its deadline, or failed."""
    tool, hid = item["call"]["tool"], item["hypothesis_id"]
    if what == "deadline":
        ctx.budget.stopped_at_deadline += 1
        message = (
            f"{tool} {message}; it was estimated at {est.seconds:.1f}s"
            if est is not None
            else f"{tool} {message} while estimating its cost"
        )
    ctx.trace.write(
        "error",
        what=what,
        tool=tool,
        message=message,
        hypothesis=hid or None,
        estimate_seconds=round(est.seconds, 2) if est is not None else None,
    )
    hyps = state.get("hypotheses", [])
    if hid:
        status = "untested" if what in ("refused", "deadline") else "error"
        hyps = _mark(hyps, hid, status=status, note=message)
    return {
        "queue": state["queue"][1:],
        "pending": None,
        "hypotheses": hyps,
        "last": None,
        "errors": _error(state, what, message, item["ref"]),
    }


# -- judge ---------------------------------------------------------------------


def _sae_ref(ctx: RunContext) -> Callable[[str], str | None]:
    """An SAE reference as the tools got it (see agent.paths), None where no tool call could use it."""
    users = user_refs(ctx.settings.question)

    def norm(ref: str) -> str | None:
        try:
            return resolve(ref, ctx.run_dir, users)
        except UserError:
            return None

    return norm


def _contradictions(h: HypothesisState, result: dict[str, Any], ctx: RunContext) -> list[str]:
    """How the hypothesis's component contradicts what its own test measured."""
    from agent.actions import HypothesisPlan

    plan, norm = HypothesisPlan.model_validate(h["plan"]), _sae_ref(ctx)
    return mismatches(
        plan.component, plan.test.tool, plan.test.input, result, lambda a, b: norm(a) is not None and norm(a) == norm(b)
    )


def _claim(h: HypothesisState, obs: Observation, result: dict[str, Any], ctx: RunContext) -> Claim | IncidentalFinding:
    """What a supported hypothesis becomes: a claim, or, when it was registered as incidental to the
    question, an incidental finding (an observation: not reviewed, not in claims.json, not scored)."""
    from agent.actions import HypothesisPlan

    plan = HypothesisPlan.model_validate(h["plan"])
    comp = plan.component
    if comp.sae_id:  # the SAE as its test read it, so that `interp reproduce` reads the same one
        comp = comp.model_copy(update={"sae_id": _sae_ref(ctx)(comp.sae_id) or comp.sae_id})
    evidence = {
        "statement": plan.statement,
        "model_id": ctx.target.model_id,
        "weights_hash": ctx.target.weights_hash,
        "component": comp,
        "evidence_tier": capped_tier(plan.tier, obs["tool"]),
        "mechanism": plan.mechanism,
        "hypothesis_id": h["id"],
        "experiment_ids": [obs["id"]],
        "effect": result.get("effect"),
        "control": result.get("control"),
        "criterion": plan.criterion.model_dump(mode="json"),
        "run_id": ctx.settings.run_id,
        "run_dir": str(ctx.run_dir.resolve()),
    }
    if plan.topic == "incidental":
        return IncidentalFinding(
            **evidence, why_incidental=plan.why_incidental, question=ctx.settings.question.get("text", "")
        )
    return Claim(**evidence, status="supported")


def judge(state: InvestigationState, runtime: Runtime[RunContext]) -> Command[Next]:
    """Judge a hypothesis's test by its pre-registered criterion; a supported one becomes a claim."""
    from agent.actions import Criterion

    ctx = _ctx(runtime)
    last: LastRun | None = state.get("last")
    out: InvestigationState = {}
    if last is not None and (hid := last["hypothesis_id"]):
        h = next(x for x in state["hypotheses"] if x["id"] == hid)
        obs = next(o for o in reversed(state["observations"]) if o["id"] == last["experiment_id"])
        result = RunFolder(ctx.run_dir).read_result(obs["id"])
        outcome, why = judge_result(Criterion.model_validate(h["plan"]["criterion"]), result)
        # the numbers may pass while the component names the wrong thing
        outcome, why = overrule(outcome, why, _contradictions(h, result, ctx))
        out["hypotheses"] = _mark(state["hypotheses"], hid, status=outcome, note=why, experiment_id=obs["id"])
        ctx.trace.write("judge", hypothesis=hid, outcome=outcome, why=why)
        if ctx.memory is not None:
            ctx.memory.put(
                Hypothesis(
                    statement=h["plan"]["statement"],
                    model_id=ctx.target.model_id,
                    weights_hash=ctx.target.weights_hash,
                    planned_test=json.dumps(h["plan"]["test"]),
                    success_criterion=Criterion.model_validate(h["plan"]["criterion"]).describe(),
                    status=outcome if outcome != "error" else "open",
                    attempts=[
                        Attempt(run_id=ctx.settings.run_id, outcome=outcome, experiment_ids=[obs["id"]], note=why)
                    ],
                )
            )
        if outcome == "error":
            out["errors"] = _error(state, "hypothesis", why, h["ref"])
        if outcome == "supported":
            claim = _claim(h, obs, result, ctx)
            if ctx.memory is not None:
                ctx.memory.put(claim)
            ctx.trace.write(
                "claim" if isinstance(claim, Claim) else "incidental",
                id=claim.id,
                statement=claim.statement,
                tier=claim.evidence_tier,
            )
            # a claim re-made after a resume replaces its earlier copy (ids are content hashes)
            record = claim.model_dump(mode="json")
            if isinstance(claim, Claim):
                out["claims"] = [*[c for c in state.get("claims", []) if c["id"] != claim.id], record]
            else:
                out["incidental"] = [*[c for c in state.get("incidental", []) if c["id"] != claim.id], record]
    merged = _merged(state, out)
    # fail fast between queued tests too, not only when the brain is asked again
    out["lines"], out["queue"] = _pivot(merged, ctx)
    _show(ctx, _merged(merged, {"lines": out["lines"], "queue": out["queue"]}))
    if ctx.budget.exhausted():
        out["stop_reason"] = "budget spent"
    out["pending"], _ = _route_queue(out["queue"])
    out["last"] = None
    return _go(out)


# -- conclude, review, report ----------------------------------------------------


def conclude(state: InvestigationState, runtime: Runtime[RunContext]) -> InvestigationState:
    """Stop: whatever was registered and not tested is listed as untested, with why."""
    ctx = _ctx(runtime)
    queue = state.get("queue", [])
    summary = next((a["summary"] for a in queue if a["kind"] == "conclude"), "") or state.get("summary", "")
    reason = state.get("stop_reason") or "the brain concluded"
    hyps = state.get("hypotheses", [])
    for h in hyps:
        if h["status"] == "open":
            hyps = _mark(hyps, h["id"], status="untested", note=f"not tested: {reason}")
    ctx.trace.write(
        "conclude",
        reason=reason,
        claims=len(state.get("claims", [])),
        untested=sum(h["status"] == "untested" for h in hyps),
        budget=ctx.budget.to_state(),
        overshoot=round(ctx.budget.overshoot(), 4),
    )
    return {
        "hypotheses": hyps,
        "queue": [],
        "pending": None,
        "stop_reason": reason,
        "summary": summary,
    }


def review(state: InvestigationState, runtime: Runtime[RunContext]) -> InvestigationState:
    """Live review pauses here (LangGraph interrupt); queued review leaves claims for `interp review`."""
    from langgraph.types import interrupt

    ctx = _ctx(runtime)
    claims = state.get("claims", [])
    if ctx.settings.review != "live" or not claims:
        return {}
    # Nothing with a side effect before interrupt(): this node re-runs from the top on resume.
    answers = interrupt(
        {
            "claims": [
                {
                    "id": c["id"],
                    "statement": c["statement"],
                    "tier": c["evidence_tier"],
                    "effect": c["effect"],
                    "control": c["control"],
                }
                for c in claims
            ]
        }
    )
    from agent.review_live import apply_decisions

    reviews = apply_decisions(answers, claims, ctx)
    return {"reviews": reviews}


def report(state: InvestigationState, runtime: Runtime[RunContext]) -> InvestigationState:
    """claims.json, report.md, report.html in the run folder."""
    from agent.report import write_report

    ctx = _ctx(runtime)
    write_report(state, ctx)
    ctx.trace.write("report", folder=str(ctx.run_dir))
    return {"done": True}
