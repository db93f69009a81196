"""Does a hypothesis's component say what its own test measured?

A criterion judges numbers; it cannot see that a claim about output `t5` was
tested by a scan whose trigger forces `t21`, or that a claim about head L1H2
was tested by ablating L0H3. This module compares every fact a component
asserts with what the test touched or measured, for the facts that test can
confirm: the scanned block and its forced output, the ablated / steered /
patched / probed components, the metric's token, the direction used. A fact
the test cannot speak to is left alone. The judge refutes a hypothesis with any
mismatch, and `interp reproduce` fails it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from memory.records import Component

_LAYER = re.compile(r"^blocks\.(\d+)\.")


def _layer_of(hook: str) -> int | None:
    m = _LAYER.match(hook)
    return int(m.group(1)) if m else None


def _sae_hook(ref: str) -> str | None:
    """The hook an SAE folder reads (from its SAELens cfg.json), None when it cannot be read."""
    try:
        cfg = json.loads((Path(ref) / "cfg.json").read_text())
    except (OSError, ValueError):
        return None
    hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    return hook if isinstance(hook, str) else None


def _metric_output(metric: dict[str, Any] | None) -> tuple[str | None, str]:
    """(the single token the metric measures, or None with why it has none)."""
    if not isinstance(metric, dict):
        return None, "the test measures no metric token"
    if metric.get("token"):
        return metric["token"], ""
    toks = metric.get("tokens") or []
    if toks and len(set(toks)) == 1:
        return toks[0], ""
    if toks:
        return None, "the test's metric measures a different token per prompt"
    return None, f"the test's metric ({metric.get('kind')}) measures no output token"


def _check_output(comp: Component, measured: str | None, why: str, what: str) -> list[str]:
    if comp.output is None:
        return []
    if measured is None:
        return [f"the component names output {comp.output!r}, but {why}"]
    if measured != comp.output:
        return [f"the component names output {comp.output!r}, but {what} {measured!r}"]
    return []


def _scan(comp: Component, result: dict[str, Any]) -> list[str]:
    top = (result.get("top") or [None])[0]
    if not top:
        return []
    out = []
    if comp.tokens is not None and list(comp.tokens) != list(top["tokens"]):
        out.append(
            f"the component names tokens {' '.join(comp.tokens)!r}, but the scan's tested block is "
            f"{' '.join(top['tokens'])!r}"
        )
    out += _check_output(comp, top["top_output"], "", "the scan measured the forced output as")
    return out


class _Touched(TypedDict):
    """What an ablate call ablated, by kind; the values are as its JSON input gave them (unchecked)."""

    heads: set[tuple[Any, Any]]
    """(layer, head) of each head."""
    neurons: set[tuple[Any, Any]]
    """(layer, neuron) of each neuron."""
    features: list[tuple[Any, Any]]
    """(sae, feature) of each SAE feature."""
    directions: set[Any]
    """Each direction id."""


def _touched(payload: dict[str, Any]) -> _Touched:
    """What an ablate call ablated, by kind."""
    heads: set[tuple[Any, Any]] = set()
    neurons: set[tuple[Any, Any]] = set()
    feats: list[tuple[Any, Any]] = []
    dirs: set[Any] = set()
    for c in payload.get("components") or []:
        if not isinstance(c, dict):
            continue
        kind = c.get("kind")
        if kind == "head":
            heads.add((c.get("layer"), c.get("head")))
        elif kind == "neuron":
            neurons.add((c.get("layer"), c.get("neuron")))
        elif kind == "sae_feature":
            feats.append((c.get("sae"), c.get("feature")))
        elif kind == "direction":
            dirs.add(c.get("direction_id"))
    return {"heads": heads, "neurons": neurons, "features": feats, "directions": dirs}


def _labels(pairs: Iterable[tuple[object, ...]], fmt: str) -> str:
    return ", ".join(fmt.format(*p) for p in sorted(pairs, key=str)) or "none"


def _ablate(comp: Component, payload: dict[str, Any], same_ref: Callable[[str, str], bool]) -> list[str]:
    t = _touched(payload)
    out = []
    if comp.heads is not None:
        claimed = {tuple(h) for h in comp.heads}
        if claimed != t["heads"]:
            out.append(
                f"the component names heads {_labels(claimed, 'L{}H{}')}, but the ablation ablated heads "
                f"{_labels(t['heads'], 'L{}H{}')}"
            )
    elif comp.head is not None:
        if t["heads"] != {(comp.layer, comp.head)}:
            out.append(
                f"the component names head L{comp.layer}H{comp.head}, but the ablation ablated heads "
                f"{_labels(t['heads'], 'L{}H{}')}"
            )
    elif comp.neuron is not None:
        if t["neurons"] != {(comp.layer, comp.neuron)}:
            out.append(
                f"the component names neuron L{comp.layer}N{comp.neuron}, but the ablation ablated neurons "
                f"{_labels(t['neurons'], 'L{}N{}')}"
            )
    elif comp.layer is not None and comp.feature is None and comp.direction_id is None:
        layers = {l for l, _ in t["heads"] | t["neurons"]}
        if comp.layer not in layers:
            out.append(
                f"the component names layer {comp.layer}, but the ablation touched layers "
                f"{', '.join(map(str, sorted(layers))) or 'none'}"
            )
    if comp.feature is not None:
        feats = {f for _, f in t["features"]}
        if feats != {comp.feature}:
            out.append(
                f"the component names SAE feature {comp.feature}, but the ablation ablated features "
                f"{', '.join(map(str, sorted(feats, key=str))) or 'none'}"
            )
        elif comp.sae_id and not all(isinstance(s, str) and same_ref(comp.sae_id, s) for s, _ in t["features"]):
            out.append(
                f"the component names SAE {comp.sae_id}, but the ablation used "
                f"{', '.join(sorted({str(s) for s, _ in t['features']}))}"
            )
    if comp.direction_id is not None and t["directions"] != {comp.direction_id}:
        out.append(
            f"the component names direction {comp.direction_id}, but the ablation ablated directions "
            f"{', '.join(sorted(map(str, t['directions']))) or 'none'}"
        )
    if comp.hook:
        hooks = {f"blocks.{l}.attn.hook_z" for l, _ in t["heads"]} | {
            f"blocks.{l}.mlp.hook_post" for l, _ in t["neurons"]
        }
        hooks |= {h for s, _ in t["features"] if isinstance(s, str) and (h := _sae_hook(s))}
        unknown = any(isinstance(s, str) and _sae_hook(s) is None for s, _ in t["features"]) or t["directions"]
        if comp.hook not in hooks and not unknown:
            out.append(
                f"the component names hook {comp.hook}, but the ablation touched "
                f"{', '.join(sorted(hooks)) or 'no hook'}"
            )
    out += _check_output(comp, *_metric_output(payload.get("metric")), "the ablation measured the token")
    return out


def _steer(
    comp: Component, payload: dict[str, Any], result: dict[str, Any], same_ref: Callable[[str, str], bool]
) -> list[str]:
    hook = payload.get("hook") or ""
    out = []
    if comp.hook and comp.hook != hook:
        out.append(f"the component names hook {comp.hook}, but the steering was at {hook}")
    if comp.layer is not None and _layer_of(hook) is not None and comp.layer != _layer_of(hook):
        out.append(f"the component names layer {comp.layer}, but the steering was at {hook} (layer {_layer_of(hook)})")
    if comp.feature is not None:
        if payload.get("feature") != comp.feature:
            out.append(
                f"the component names SAE feature {comp.feature}, but the steering used "
                + (f"feature {payload['feature']}" if payload.get("feature") is not None else "no SAE feature")
            )
        elif comp.sae_id and not (isinstance(payload.get("sae"), str) and same_ref(comp.sae_id, payload["sae"])):
            out.append(f"the component names SAE {comp.sae_id}, but the steering used {payload.get('sae')}")
    if comp.direction_id is not None and result.get("direction_id") != comp.direction_id:
        out.append(
            f"the component names direction {comp.direction_id}, but the steering used {result.get('direction_id')}"
        )
    out += _check_output(comp, *_metric_output(payload.get("metric")), "the steering measured the token")
    return out


def _patch(comp: Component, result: dict[str, Any]) -> list[str]:
    top = (result.get("top") or [None])[0]
    if not top:
        return []
    row, col, out = str(top["row"]), str(top["col"]), []
    layer: int | None
    if result.get("over") == "heads":
        layer, head = int(row.lstrip("L")), int(col.lstrip("H"))
        if comp.head is not None and (comp.layer, comp.head) != (layer, head):
            out.append(
                f"the component names head L{comp.layer}H{comp.head}, but patching found its largest effect "
                f"at L{layer}H{head}"
            )
        hook = f"blocks.{layer}.attn.hook_z"
    else:
        hook, layer = row, _layer_of(row)
    if comp.hook and comp.hook != hook:
        out.append(f"the component names hook {comp.hook}, but patching found its largest effect at {hook}")
    if comp.layer is not None and comp.head is None and layer is not None and comp.layer != layer:
        out.append(f"the component names layer {comp.layer}, but patching found its largest effect at layer {layer}")
    return out


def _probe(comp: Component, result: dict[str, Any]) -> list[str]:
    best = result.get("best_hook") or ""
    out = []
    if comp.hook and comp.hook != best:
        out.append(f"the component names hook {comp.hook}, but the probe's best hook (its effect) is {best}")
    if comp.layer is not None and _layer_of(best) is not None and comp.layer != _layer_of(best):
        out.append(f"the component names layer {comp.layer}, but the probe's best hook is {best}")
    return out


def _attention(comp: Component, result: dict[str, Any]) -> list[str]:
    top = (result.get("top_induction") or [None])[0]
    if top and comp.head is not None and (comp.layer, comp.head) != (top["layer"], top["head"]):
        return [
            f"the component names head L{comp.layer}H{comp.head}, but the attention effect is the induction "
            f"score of L{top['layer']}H{top['head']}"
        ]
    return []


def overrule(outcome: str, why: str, wrong: list[str]) -> tuple[str, str]:
    """The verdict once mismatches are known: a component that contradicts its own test is refuted,
    whatever its numbers say (an error stays an error)."""
    if not wrong:
        return outcome, why
    verdict = "refuted" if outcome in ("supported", "inconclusive") else outcome
    return verdict, why + "; contradicted by its own test: " + "; ".join(wrong)


def _same(a: str, b: str) -> bool:
    return a == b or Path(a).resolve() == Path(b).resolve()


def mismatches(
    component: Component,
    tool: str,
    payload: dict[str, Any],
    result: dict[str, Any],
    same_ref: Callable[[str, str], bool] = _same,
) -> list[str]:
    """Each way the component contradicts what its test measured ([] when it agrees).

    `payload` is the test's input as it ran, `result` its JSON result; `same_ref`
    says whether two SAE references name the same SAE.
    """
    if tool == "scan":
        return _scan(component, result)
    if tool == "ablate":
        return _ablate(component, payload, same_ref)
    if tool == "steer":
        return _steer(component, payload, result, same_ref)
    if tool == "patch":
        return _patch(component, result)
    if tool == "probe":
        return _probe(component, result)
    if tool == "attention":
        return _attention(component, result)
    if tool == "predict":
        common = result.get("most_common") or []
        return _check_output(
            component,
            common[0][0] if common else None,
            "the prediction has no answers",
            "the most common prediction is",
        )
    if tool == "sae_train" and component.hook and component.hook != result.get("hook"):
        return [f"the component names hook {component.hook}, but the SAE was trained on {result.get('hook')}"]
    return []
