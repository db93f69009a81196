"""Labels out of memory in the shapes Neuronpedia takes.

The rules below were read from Neuronpedia's own repository, hijohnnylin/neuronpedia at commit
ebb8426fc550ad5d1f76d52c271a624af3c08a57 (tests/fixtures/neuronpedia/explanations.schema.json holds the
subset the export is tested against):
- apps/webapp/app/api/explanation/new/route.tsx: the upload body is
  `{feature: {modelId, layer, index, explanation, explanationModel?}}`, `layer` being a source id such as
  `6-res-jb`, `index` an integer. (At that commit the route answers "not currently active": the bodies are
  written as it documents them, for when it is, and for Neuronpedia's maintainers' import.)
- apps/webapp/lib/utils/source.ts: a source id is `{layer}-{set}` (`e` for the embedding), optionally
  `__{extra}`; apps/webapp/app/api/source-set/new/route.tsx: a set name is lowercase letters, digits and
  hyphens; apps/webapp/app/api/model/new/route.tsx: the model id rule.
- apps/webapp/prisma/schema.prisma: Explanation (`description`, `typeName`, `explanationModelName`,
  `index` a string) and ExplanationScore (`value`, `explanationScoreTypeName`, `explanationScoreModelName`,
  both names foreign keys into tables Neuronpedia seeds).
- apps/webapp/app/api/explanation/score/route.tsx: the score types it computes (`eleuther_recall` is
  EleutherAI's detection, `eleuther_fuzz` their fuzzing, `recall_alt`, `eleuther_embedding`).

Error records are left out: a failed explanation has nothing to publish. Scores without a Neuronpedia
type (intervention) are left out, and the file's `notes` say so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import UserError

if TYPE_CHECKING:
    from memory.records import FeatureLabel
    from memory.store import MemoryStore

NEURONPEDIA = "hijohnnylin/neuronpedia@ebb8426fc550ad5d1f76d52c271a624af3c08a57"
"""The commit whose schema the export follows."""

SCORE_TYPES = {"detection": "eleuther_recall", "fuzzing": "eleuther_fuzz"}
"""Our scorer -> Neuronpedia's ExplanationScoreType of the same method (EleutherAI's detection and fuzzing:
balanced accuracy of applying the explanation to held-out contexts). Others have no counterpart there."""

EXPLANATION_TYPE = "interp-agent_structured"
"""ExplanationType.name of our explanations (a structured token rule with a sentence for people)."""

SOURCE_ID = re.compile(r"^(e|[0-9]+)-([a-z][a-z0-9-]*[a-z0-9]|[a-z0-9])(__[A-Za-z0-9._-]+)?$")
MODEL_ID = re.compile(r"^[a-z][a-z0-9.-]{0,30}[a-z0-9]$")
SOURCE_HELP = (
    "a Neuronpedia source id is LAYER-SET, e.g. 1-res-sae: LAYER the block number (e for the "
    "embedding), SET lowercase letters, digits and single hyphens (the name of your source set on "
    "Neuronpedia)"
)


def check_source_id(source_id: str) -> str:
    set_name = source_id.partition("-")[2].split("__")[0]
    if not SOURCE_ID.match(source_id) or "--" in set_name or set_name == "neurons":
        raise UserError(f"--source-id {source_id!r} is not a Neuronpedia source id: {SOURCE_HELP}")
    return source_id


def check_model_id(model_id: str, where: str) -> str:
    if not MODEL_ID.match(model_id) or "--" in model_id or ".." in model_id:
        raise UserError(
            f"{where} {model_id!r} is not a Neuronpedia model id (2-32 characters: lowercase letters, "
            "digits, single hyphens and periods, starting with a letter): pass the id of the model on "
            "Neuronpedia with --neuronpedia-model, e.g. --neuronpedia-model gpt2-small"
        )
    return model_id


def saelens_neuronpedia_id(sae_id: str) -> str | None:
    """The SAE's `neuronpedia_id` ("MODEL/SOURCE") from its SAELens cfg.json (top level or under
    `metadata`), or from SAELens's registry for a RELEASE/SAE_ID; None when it has none."""
    path = Path(sae_id)
    if path.is_dir():
        cfg_file = path / "cfg.json"
        try:
            cfg = json.loads(cfg_file.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(
                f"cannot read the SAE config {cfg_file} to find its neuronpedia_id ({e}); "
                "pass --source-id LAYER-SET instead"
            ) from None
        found = cfg.get("neuronpedia_id") or (cfg.get("metadata") or {}).get("neuronpedia_id")
        return found if isinstance(found, str) and found else None
    if "/" in sae_id and not path.exists():
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

        release, _, sae = sae_id.partition("/")
        entry = get_pretrained_saes_directory().get(release)
        return (entry.neuronpedia_id or {}).get(sae) if entry is not None else None
    return None


def _where(labels: list[FeatureLabel], source_id: str | None, model: str | None) -> dict[str, tuple[str, str]]:
    """SAE id -> (Neuronpedia model id, source id), from the flags or each SAE's neuronpedia_id."""
    saes = sorted({r.sae_id for r in labels})
    if source_id is not None and len(saes) > 1:
        raise UserError(
            f"--source-id names one SAE's source, but the labels come from {len(saes)} SAEs "
            f"({', '.join(saes[:3])}{' ...' if len(saes) > 3 else ''}): "
            "export one at a time with --sae DIR"
        )
    out = {}
    for sae in saes:
        np_id = None if source_id is not None else saelens_neuronpedia_id(sae)
        np_model, _, np_source = (np_id or "").rpartition("/")
        src = source_id or np_source
        if not src:
            raise UserError(
                f"the SAE {sae} has no neuronpedia_id in its SAELens config, so its Neuronpedia source "
                f"is unknown: pass --source-id LAYER-SET ({SOURCE_HELP})"
            )
        mid = model or np_model or next(r.model_id for r in labels if r.sae_id == sae)
        how = "--neuronpedia-model" if model else "the SAE's neuronpedia_id" if np_model else "the labels' model id"
        out[sae] = (check_model_id(mid, how), check_source_id(src))
    return out


def neuronpedia_document(
    labels: list[FeatureLabel], source_id: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """The export: one upload body per feature for POST /api/explanation/new, the same explanations as
    Explanation rows with their ExplanationScore rows, and notes on what was left out."""
    labels = sorted((r for r in labels if r.error is None and r.label), key=lambda r: (r.model_id, r.sae_id, r.feature))
    where = _where(labels, source_id, model)
    uploads, rows, dropped = [], [], set()
    for r in labels:
        mid, src = where[r.sae_id]
        uploads.append(
            {
                "feature": {
                    "modelId": mid,
                    "layer": src,
                    "index": r.feature,
                    "explanation": r.label,
                    **({"explanationModel": r.explainer} if r.explainer else {}),
                }
            }
        )
        scores = []
        for name, value in sorted(r.scores.items()):
            if name not in SCORE_TYPES:
                dropped.add(name)
                continue
            scores.append(
                {
                    "value": value,
                    "explanationScoreTypeName": SCORE_TYPES[name],
                    "explanationScoreModelName": r.judge or "rule",
                }
            )
        rows.append(
            {
                "modelId": mid,
                "layer": src,
                "index": str(r.feature),
                "description": r.label,
                "typeName": EXPLANATION_TYPE,
                "explanationModelName": r.explainer or None,
                "scores": scores,
            }
        )
    notes = [
        f"Shapes follow {NEURONPEDIA}: uploads are POST /api/explanation/new bodies; explanations are "
        "Explanation rows with ExplanationScore rows.",
        "Scores come from interp-agent's scorers: detection as eleuther_recall, fuzzing as eleuther_fuzz "
        "(the same methods, run here; explanationScoreModelName is the judge that applied the explanation, "
        "'rule' for the offline rule judge).",
    ]
    notes += [f"score {name!r} left out: Neuronpedia has no score type for it" for name in sorted(dropped)]
    notes.append(
        f"typeName {EXPLANATION_TYPE!r}, the explanation and score model names are foreign keys on "
        "Neuronpedia: its maintainers register them before an import."
    )
    return {"neuronpedia": NEURONPEDIA, "uploads": uploads, "explanations": rows, "notes": notes}


def neuronpedia(
    store: MemoryStore,
    path: Path,
    model_id: str | None = None,
    sae: str | None = None,
    source_id: str | None = None,
    neuronpedia_model: str | None = None,
) -> dict[str, Any]:
    """Write the export of the stored labels (of one model id / one SAE when given) to `path`."""
    from memory.records import FeatureLabel

    labels = [r for r in store.list(kind="feature_label", model=model_id) if isinstance(r, FeatureLabel)]
    if sae is not None:
        key = str(Path(sae).resolve()) if Path(sae).is_dir() else sae
        labels = [r for r in labels if r.sae_id == key]
    if not any(r.error is None and r.label for r in labels):
        which = (
            " and ".join(x for x in (f"model id {model_id!r}" if model_id else "", f"SAE {sae!r}" if sae else "") if x)
            or "any model"
        )
        raise UserError(
            f"no feature labels stored for {which} in this memory: nothing to export (label features "
            "first with `interp label --model M --sae SAE`, or check --memory / --model-id / --sae)"
        )
    doc = neuronpedia_document(labels, source_id, neuronpedia_model)
    try:
        Path(path).write_text(json.dumps(doc, indent=2))
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    return doc
