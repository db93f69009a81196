"""Labels out of memory in Neuronpedia's explanation format.

Each explanation is an object with Neuronpedia's field names: `modelId`,
`layer` (the SAE's source id: here the SAE's hook and folder name), `index`
(the feature, as a string), `description`, `explanationModelName`, `typeName`
and `scores` ({`explanationScoreTypeName`, `value`}). Error records are left
out: a failed explanation has nothing to publish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memory.store import MemoryStore


def neuronpedia(store: MemoryStore, path: Path, model_id: str | None = None) -> int:
    labels = [r for r in store.list(kind="feature_label", model=model_id) if r.error is None and r.label]
    rows = [{
        "modelId": r.model_id,
        "layer": f"{r.hook}/{Path(r.sae_id).name}",
        "index": str(r.feature),
        "description": r.label,
        "explanationModelName": r.explainer,
        "typeName": "interp-agent_structured",
        "scores": [{"explanationScoreTypeName": f"{name} ({r.judge or 'rule'})" if name != "intervention" else name,
                    "value": v} for name, v in sorted(r.scores.items())],
    } for r in sorted(labels, key=lambda r: (r.model_id, r.sae_id, r.feature))]
    Path(path).write_text(json.dumps(rows, indent=2))
    return len(rows)
