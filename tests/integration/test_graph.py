"""Attribution graphs: the edges into a logit add up to it, edges match a hand computation, the JSON is
what circuit-tracer's viewer reads, and bad inputs are UserErrors."""

import json

import pytest
from pydantic import BaseModel, ConfigDict

from agent.targets import load
from tools.cost import Meter
from tools.errors import UserError
from tools.graph import GraphInput, build
from tools.registry import call, estimate


@pytest.fixture(scope="module")
def features(builtin):
    builtin("features")
    return load("organism:features")


@pytest.fixture(scope="module")
def transcoders(features, tmp_path_factory):
    out = tmp_path_factory.mktemp("graph") / "tc"
    call(features, "transcoder_train", {"out": str(out), "steps": 300, "corpus_size": 400})
    return str(out)


@pytest.fixture(scope="module")
def prompt(features):
    return features.usage_prompts(1, seed=7)[0]


def test_every_target_is_the_sum_of_its_edges(features, transcoders, prompt):
    import torch

    b = build(features, GraphInput(prompt=prompt, transcoders=transcoders, batch_size=16), Meter())
    p, lay = b.prepared, b.prepared.layout
    assert lay.n_features > 0 and lay.n_logits >= 1
    # logits: edges from features, errors, embeddings, plus bias terms, give the model's own logit
    for j in range(lay.n_logits):
        total = float(b.adjacency[lay.logit_start + j].sum() + b.bias[j])
        assert abs(total - float(p.logits[p.logit_ids[j]])) < 1e-3
    # features: edges give the pre-activation the transcoder computes on the clean pass
    tcs = p.transcoders
    for r, node in enumerate(b.row_node[lay.n_logits :], start=lay.n_logits):
        layer, pos, f = p.features[node]
        x = p.cache[f"blocks.{layer}.ln2.hook_normalized"][0, pos]
        pre = float(x @ tcs[layer].W_enc[:, f].detach() + tcs[layer].b_enc[f].detach())
        assert abs(float(b.adjacency[node].sum() + b.bias[r]) - pre) < 1e-3
        if pre > 0:
            assert float(p.activations[node]) == pytest.approx(pre, abs=1e-4)
    # causality: a feature receives nothing from its own or later layers, nor from later positions
    for node, (layer, pos, _) in enumerate(p.features):
        for src, (l2, p2, _) in enumerate(p.features):
            if l2 >= layer or p2 > pos:
                assert b.adjacency[node, src] == 0
    # a last-layer feature's edge into a logit, by hand: through the frozen final LayerNorm only
    model = features.model
    last = lay.n_layers - 1
    scale = p.cache["ln_final.hook_scale"][0, -1]
    w_u = model.W_U[:, p.logit_ids[0]].detach()
    checked = 0
    for node, (layer, pos, f) in enumerate(p.features):
        if layer == last and pos == lay.n_pos - 1:
            v = p.activations[node] * tcs[layer].W_dec[f].detach()
            expect = float(((v - v.mean()) / scale * model.ln_final.w.detach()) @ w_u)
            assert float(b.adjacency[lay.logit_start, node]) == pytest.approx(expect, rel=1e-4, abs=1e-5)
            checked += 1
    assert checked > 0
    assert torch.isfinite(b.adjacency).all()


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str
    scan: str
    transcoder_list: list[str]
    prompt_tokens: list[str]
    prompt: str
    node_threshold: float | None
    schema_version: int


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: str
    feature: int
    layer: str
    ctx_idx: int
    feature_type: str
    token_prob: float
    is_target_logit: bool
    run_idx: int
    reverse_ctx_idx: int
    jsNodeId: str
    clerp: str
    influence: float | None
    activation: float | None


class _Link(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    target: str
    weight: float


def test_graph_tool_writes_a_viewer_json(features, transcoders, prompt, tmp_path):
    out = tmp_path / "graphs" / "first.json"
    payload = {"prompt": prompt, "transcoders": transcoders, "out": str(out)}
    predicted = estimate(features, "graph", payload)
    r = call(features, "graph", payload)
    assert r.cost.forward_tokens == predicted and r.cost.backward_passes >= 1
    assert r.max_residual < 1e-3 and ", within 0.001" in r.summary
    assert r.path == str(out) and r.kept_nodes <= r.nodes and r.top_features
    data = json.loads(out.read_text())
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    meta = _Meta(**data["metadata"])
    nodes = [_Node(**n) for n in data["nodes"]]
    links = [_Link(**e) for e in data["links"]]
    ids = [n.node_id for n in nodes]
    assert len(ids) == len(set(ids)), "node ids must be unique"
    assert {e.source for e in links} | {e.target for e in links} <= set(ids)
    kinds = {n.feature_type for n in nodes}
    assert {"embedding", "logit", "cross layer transcoder"} <= kinds
    assert sum(n.feature_type == "embedding" for n in nodes) == r.n_tokens == len(meta.prompt_tokens)
    assert sum(n.is_target_logit for n in nodes) == 1 and meta.slug == "first"
    # the most influential feature survives pruning
    t = r.top_features[0]
    assert f"{t.layer}_{t.feature}_{t.position}" in ids
    listing = json.loads((out.parent / "graph-metadata.json").read_text())
    assert [g["slug"] for g in listing["graphs"]] == ["first"]
    # thresholds of 1 keep at least as much as the defaults
    full = call(features, "graph", {**payload, "node_threshold": 1.0, "edge_threshold": 1.0, "out": None})
    assert full.kept_nodes >= r.kept_nodes and full.kept_edges >= r.kept_edges


def test_bad_graph_inputs_are_user_errors(features, transcoders, prompt, tiny_organism, tmp_path):
    with pytest.raises(UserError, match=r"adjacency matrix needs .* MiB, over max_adjacency_mb"):
        call(features, "graph", {"prompt": prompt, "transcoders": transcoders, "max_adjacency_mb": 0.001})
    with pytest.raises(UserError, match="no transcoder for layer\\(s\\) \\[1\\]"):
        call(features, "graph", {"prompt": prompt, "transcoders": [transcoders + "/layer_0"]})
    with pytest.raises(UserError, match="not found"):
        call(features, "graph", {"prompt": prompt, "transcoders": str(tmp_path / "nowhere")})
    with pytest.raises(UserError, match="not a single token"):
        call(features, "graph", {"prompt": prompt, "transcoders": transcoders, "targets": ["t1 t2"]})
    # transcoders of another model: a different d_model, and a layer this model does not have
    tiny = load(f"organism:{tiny_organism}")
    other = tmp_path / "tiny"
    call(tiny, "transcoder_train", {"out": str(other), "corpus": {"random": 60, "length": 5}, "steps": 3})
    with pytest.raises(UserError, match="d_model is 64"):
        call(features, "graph", {"prompt": prompt, "transcoders": str(other)})
    cfg = other / "layer_1" / "cfg.json"
    data = json.loads(cfg.read_text())
    data["metadata"]["hook_name"] = "blocks.5.ln2.hook_normalized"
    cfg.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"layer 5, but the model has layers 0..1"):
        call(tiny, "graph", {"prompt": "t1 t2 <q>", "transcoders": str(other)})
    # a damaged folder, and an SAE where a transcoder belongs
    cfg.write_text("{not json")
    with pytest.raises(UserError, match="cannot load the transcoder"):
        call(tiny, "graph", {"prompt": "t1 t2 <q>", "transcoders": str(other)})
    sae = tmp_path / "sae"
    call(
        tiny,
        "sae_train",
        {
            "hook": "blocks.0.hook_resid_post",
            "corpus": {"random": 60, "length": 5},
            "out": str(sae),
            "d_sae": 16,
            "k": 2,
            "steps": 2,
        },
    )
    with pytest.raises(UserError, match="not a transcoder"):
        call(tiny, "graph", {"prompt": "t1 t2 <q>", "transcoders": [str(sae), str(other / "layer_0")]})
