"""Influence and pruning of an attribution graph on a hand-built one."""

import torch

from tools.graph_prune import Layout, _normalise, cumulative_cut, influence, prune


def _chain():
    # 3 features, error nodes for 2 layers x 1 position, 1 embedding, 1 logit: embedding -> f0 -> f2 -> logit
    lay = Layout(n_features=3, n_layers=2, n_pos=1, n_logits=1)
    a = torch.zeros(lay.n_nodes, lay.n_nodes)
    emb, err0, err1, logit = lay.embed_start, lay.error_start, lay.error_start + 1, lay.logit_start
    a[0, emb] = 2.0  # feature 0 <- embedding
    a[1, emb] = 0.1  # feature 1 <- embedding (weak)
    a[2, 0] = 3.0  # feature 2 <- feature 0
    a[2, 1] = -0.01  # feature 2 <- feature 1 (tiny)
    a[logit, 2] = 5.0  # logit <- feature 2
    a[logit, err1] = 0.5  # logit <- error at layer 1
    a[logit, 1] = 0.02  # logit <- feature 1 directly (tiny)
    return lay, a, (emb, err0, err1, logit)


def test_influence_is_the_sum_over_paths():
    lay, a, _ = _chain()
    w = torch.zeros(lay.n_nodes)
    w[lay.logit_start] = 1.0
    norm = _normalise(a)
    expect = w @ (torch.linalg.inv(torch.eye(lay.n_nodes) - norm) - torch.eye(lay.n_nodes))
    assert torch.allclose(influence(norm, w, lay.n_layers + 3), expect, atol=1e-6)


def test_cumulative_cut_keeps_the_share_asked():
    scores = torch.tensor([5.0, 3.0, 1.0, 1.0])
    assert cumulative_cut(scores, 0.5) == 5.0
    assert cumulative_cut(scores, 0.8) == 3.0
    assert cumulative_cut(scores, 1.0) == 1.0


def test_pruning_keeps_the_main_path_and_drops_the_weak_feature():
    lay, a, (emb, err0, _err1, logit) = _chain()
    p = prune(a, lay, torch.tensor([1.0]), node_threshold=0.8, edge_threshold=0.98)
    kept = set(p.node_mask.nonzero().flatten().tolist())
    assert {0, 2, emb, logit} <= kept and 1 not in kept and err0 not in kept
    assert p.edge_mask[2, 0] and p.edge_mask[logit, 2] and not p.edge_mask[logit, 1]
    assert not p.edge_mask[:, ~p.node_mask].any() and not p.edge_mask[~p.node_mask].any()
    full = prune(a, lay, torch.tensor([1.0]), node_threshold=1.0, edge_threshold=1.0)
    assert full.node_mask.sum() >= p.node_mask.sum()
