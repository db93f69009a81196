"""Pruning an attribution graph by influence, and writing it in the circuit-tracer / Neuronpedia JSON format.

Pruning follows the method of Ameisen et al. (2025), as circuit-tracer implements it:

1. Normalise: A = |adjacency| with each target's incoming weights scaled to sum to 1.
2. Influence of every node on the logits: w (A + A^2 + A^3 + ...), where w holds the logit nodes'
   probabilities. The graph is a DAG, so the series ends after at most n_layers + 2 terms.
3. Nodes: sort by influence and keep the smallest set whose cumulative share reaches
   `node_threshold`; embeddings and logits are always kept.
4. Edges: on the graph of kept nodes, score each edge by its normalised weight times the influence
   of its target (plus the target's own logit weight), keep the smallest set of edges whose
   cumulative share reaches `edge_threshold`.
5. Repeatedly drop feature and error nodes left without an outgoing kept edge, and features left
   without an incoming one (a node that reaches nothing, or that nothing reaches, explains nothing).

The thresholds are shares of total influence, not of nodes: 0.8 keeps the nodes that carry 80% of
the influence on the logits, however many that is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

SCHEMA_VERSION = 1


@dataclass
class Layout:
    """Where each kind of node sits in the adjacency matrix: [features, errors, embeddings, logits]."""

    n_features: int
    n_layers: int
    n_pos: int
    n_logits: int

    @property
    def n_errors(self) -> int:
        return self.n_layers * self.n_pos

    @property
    def error_start(self) -> int:
        return self.n_features

    @property
    def embed_start(self) -> int:
        return self.n_features + self.n_errors

    @property
    def logit_start(self) -> int:
        return self.embed_start + self.n_pos

    @property
    def n_nodes(self) -> int:
        return self.logit_start + self.n_logits


def _normalise(a: Tensor) -> Tensor:
    a = a.abs()
    return a / a.sum(dim=1, keepdim=True).clamp(min=1e-10)


def influence(a: Tensor, weights: Tensor, max_terms: int) -> Tensor:
    """weights @ (A + A^2 + ...): total influence of each node along every path (A nilpotent: a DAG)."""
    term = weights @ a
    total = term.clone()
    for _ in range(max_terms):
        if not term.any():
            return total
        term = term @ a
        total += term
    raise UserError(
        "influence did not converge: the adjacency matrix has a cycle, which an attribution graph "
        "cannot have (a bug in the graph construction)"
    )


def cumulative_cut(scores: Tensor, threshold: float) -> float:
    """The smallest score kept when keeping the top scores up to `threshold` of their total."""
    import torch

    ordered = torch.sort(scores.flatten(), descending=True).values
    total = ordered.sum()
    if total <= 0:
        return float("inf")
    share = torch.cumsum(ordered, 0) / total
    i = min(int(torch.searchsorted(share, torch.tensor(threshold, dtype=share.dtype))), len(ordered) - 1)
    return float(ordered[i])


@dataclass
class Pruned:
    node_mask: Tensor
    """bool [n_nodes]: kept nodes."""
    edge_mask: Tensor
    """bool [n_nodes, n_nodes]: kept edges (target row, source column)."""
    influence: Tensor
    """Per node: its influence on the logits (unpruned graph)."""
    cumulative: Tensor
    """Per node: the cumulative influence share up to and including it, in influence order (what the
    viewers show as `influence`; lower is more important)."""


def prune(
    adjacency: Tensor, layout: Layout, logit_weights: Tensor, node_threshold: float, edge_threshold: float
) -> Pruned:
    import torch

    n = layout.n_nodes
    w = torch.zeros(n, dtype=adjacency.dtype)
    w[layout.logit_start :] = logit_weights
    max_terms = layout.n_layers + 3
    node_infl = influence(_normalise(adjacency), w, max_terms)
    keep = node_infl >= cumulative_cut(node_infl, node_threshold)
    keep[layout.embed_start :] = True
    pruned = adjacency.clone()
    pruned[~keep] = 0
    pruned[:, ~keep] = 0
    norm = _normalise(pruned)
    edge_scores = norm * (influence(norm, w, max_terms) + w)[:, None]
    edges = edge_scores >= cumulative_cut(edge_scores, edge_threshold)
    edges &= pruned != 0
    inner = slice(0, layout.embed_start)  # features and errors: must send somewhere
    feats = slice(0, layout.n_features)  # features: must also receive
    while True:
        before = keep.clone()
        keep[inner] &= edges[:, inner].any(0)
        keep[feats] &= edges[feats].any(1)
        edges[~keep] = False
        edges[:, ~keep] = False
        if torch.equal(before, keep):
            break
    order = torch.argsort(node_infl, descending=True)
    total = node_infl.sum().clamp(min=1e-10)
    cumulative = torch.zeros_like(node_infl)
    cumulative[order] = torch.cumsum(node_infl[order], 0) / total
    return Pruned(keep, edges, node_infl, cumulative)


def _shown(token: str) -> str:
    """A token as the viewers print it: line breaks and tabs made visible."""
    return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def _cantor(a: int, b: int) -> int:
    """A unique integer per (layer, feature): the viewers key features by it."""
    return (a + b) * (a + b + 1) // 2 + b


def viewer_json(
    *,
    slug: str,
    scan: str,
    transcoder_list: list[str],
    prompt: str,
    prompt_tokens: list[str],
    token_ids: list[int],
    features: list[tuple[int, int, int]],
    activations: list[float],
    logit_ids: list[int],
    logit_tokens: list[str],
    logit_probs: list[float],
    targets: list[bool],
    adjacency: Tensor,
    layout: Layout,
    pruned: Pruned,
    node_threshold: float,
) -> dict[str, Any]:
    """The graph as circuit-tracer's `create_graph_files` writes it (metadata, qParams, nodes, links).

    One departure: error nodes are `err_{layer}_{pos}` instead of circuit-tracer's `0_{layer}_{pos}`,
    which can equal the id of a layer-0 feature (`0_{feature}_{pos}`) when the feature index is a layer
    number; viewers key nodes by id, and only need it unique.
    """
    n_layers, n_pos = layout.n_layers, layout.n_pos
    ids: dict[int, dict[str, Any]] = {}
    for i in pruned.node_mask.nonzero().flatten().tolist():
        infl = round(float(pruned.cumulative[i]), 6)
        if i < layout.n_features:
            layer, pos, feat = features[i]
            node = {
                "node_id": f"{layer}_{feat}_{pos}",
                "feature": _cantor(layer, feat),
                "layer": str(layer),
                "ctx_idx": pos,
                "feature_type": "cross layer transcoder",
                "jsNodeId": f"{layer}_{feat}-0",
                "influence": infl,
                "activation": round(activations[i], 6),
            }
        elif i < layout.embed_start:
            layer, pos = divmod(i - layout.error_start, n_pos)
            nid = f"err_{layer}_{pos}"
            node = {
                "node_id": nid,
                "feature": -1,
                "layer": str(layer),
                "ctx_idx": pos,
                "feature_type": "mlp reconstruction error",
                "jsNodeId": nid,
                "influence": infl,
            }
        elif i < layout.logit_start:
            pos = i - layout.embed_start
            node = {
                "node_id": f"E_{token_ids[pos]}_{pos}",
                "feature": pos,
                "layer": "E",
                "ctx_idx": pos,
                "feature_type": "embedding",
                "jsNodeId": f"E_{token_ids[pos]}-{pos}",
                "influence": infl,
            }
        else:
            j = i - layout.logit_start
            layer = str(n_layers + 1)
            vocab = logit_ids[j]
            node = {
                "node_id": f"{layer}_{vocab}_{n_pos - 1}",
                "feature": vocab,
                "layer": layer,
                "ctx_idx": n_pos - 1,
                "feature_type": "logit",
                "token_prob": round(logit_probs[j], 6),
                "is_target_logit": targets[j],
                "jsNodeId": f"L_{vocab}-{n_pos - 1}",
                "clerp": f'Output "{_shown(logit_tokens[j])}" (p={logit_probs[j]:.3f})',
            }
        ids[i] = {
            "token_prob": 0.0,
            "is_target_logit": False,
            "run_idx": 0,
            "reverse_ctx_idx": 0,
            "clerp": "",
            "influence": None,
            "activation": None,
            **node,
        }
    dst, src = pruned.edge_mask.nonzero(as_tuple=True)
    links = [
        {"source": ids[s]["node_id"], "target": ids[d]["node_id"], "weight": round(float(adjacency[d, s]), 6)}
        for d, s in zip(dst.tolist(), src.tolist(), strict=True)
        if s in ids and d in ids
    ]
    return {
        "metadata": {
            "slug": slug,
            "scan": scan,
            "transcoder_list": transcoder_list,
            "prompt_tokens": [_shown(t) for t in prompt_tokens],
            "prompt": prompt,
            "node_threshold": node_threshold,
            "schema_version": SCHEMA_VERSION,
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": list(ids.values()),
        "links": links,
    }


def write_viewer_files(data: dict[str, Any], path: Path) -> None:
    """The graph JSON, and graph-metadata.json beside it listing every graph in that folder by slug (what
    circuit-tracer's local server reads to offer them)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
        index = path.parent / "graph-metadata.json"
        listing = json.loads(index.read_text()) if index.is_file() else {"graphs": []}
        graphs = [g for g in listing.get("graphs", []) if g.get("slug") != data["metadata"]["slug"]]
        index.write_text(json.dumps({"graphs": [*graphs, data["metadata"]]}, indent=2))
    except OSError as e:
        raise UserError(f"cannot write the graph to {path}: {e.strerror}") from None
    except json.JSONDecodeError:
        raise UserError(
            f"{path.parent / 'graph-metadata.json'} exists and is not JSON: move it away or choose "
            "another folder for the graph"
        ) from None
