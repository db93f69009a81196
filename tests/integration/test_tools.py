"""The tools on built-in organisms, checked against the organisms' manifests."""

import numpy as np
import pytest

from agent.targets import load
from experiments.organisms.cache import load_manifest, resolve_spec
from experiments.organisms.prompts import lookup_prompts, sequence_prompts
from tools.errors import UserError
from tools.registry import call


@pytest.fixture(autouse=True)
def _directions(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DIRECTIONS", str(tmp_path / "directions"))


@pytest.fixture(scope="module")
def eval_aware(builtin):
    folder = builtin("eval_aware")
    spec = resolve_spec("eval_aware")
    marked, switched, _normal = lookup_prompts(spec, 240, seed=1, marker=True, trigger=False)
    clean, _, _ = lookup_prompts(spec, 240, seed=2, marker=False, trigger=False)
    return load(f"organism:{folder}"), load_manifest(folder), marked, switched, clean


def test_probe_reads_the_marker_where_the_manifest_says(eval_aware):
    target, manifest, marked, _, clean = eval_aware
    hook = manifest.mechanisms[0].hooks[0]
    r = call(target, "probe", {"positive": marked[:120], "negative": clean[:120], "hooks": [hook]})
    assert r.effect >= 0.95 and r.per_hook[0].auroc >= 0.95
    assert 0.3 <= r.control <= 0.7
    assert r.per_hook[0].accuracy_ci[0] > 0.85 and r.cost.forward_tokens > 0


def test_probe_sweep_finds_no_marker_in_the_embeddings(eval_aware):
    target, _, marked, _, clean = eval_aware
    r = call(target, "probe", {"positive": marked[:60], "negative": clean[:60]})
    by_hook = {p.hook: p.accuracy for p in r.per_hook}
    # The query token's embedding cannot know about an earlier marker.
    assert by_hook["blocks.0.hook_resid_pre"] <= 0.7 and r.effect >= 0.95


def test_difference_of_means_steering_removes_the_switch_and_random_does_not(eval_aware):
    target, manifest, marked, switched, clean = eval_aware
    hook = manifest.mechanisms[0].hooks[0]
    r = call(
        target,
        "steer",
        {
            "hook": hook,
            "positive": marked[:100],
            "negative": clean[:100],
            "prompts": marked[100:],
            "metric": {"kind": "rate", "tokens": switched[100:]},
            "coefficients": [-1.0, -0.5, 0.5],
        },
    )
    assert r.baseline >= 0.95
    assert r.relative_effect <= -0.8
    assert abs(r.control) / r.baseline < 0.1
    assert r.direction_id.startswith("dir-") and r.monotonic > 0


def _induction_prompts(n: int, seed: int = 0):
    """Repeated sequences cut inside the second copy; the answer is the next repeated token."""
    spec = resolve_spec("induction")
    rng = np.random.default_rng(seed)
    prompts, answers = [], []
    for seq in sequence_prompts(spec, n, seed=seed):
        toks = seq.split()
        k = len(toks) // 2  # prefix is shorter than the copy, so this is inside the second copy
        cut = int(rng.integers(len(toks) - k + 1, len(toks)))
        prompts.append(" ".join(toks[:cut]))
        answers.append(toks[cut])
    return prompts, answers


def test_ablating_an_induction_head_hurts_far_more_than_random_heads(builtin):
    folder = builtin("induction")
    target = load(f"organism:{folder}")
    truth = load_manifest(folder).mechanisms[0]
    prompts, answers = _induction_prompts(150)
    rate = {"kind": "rate", "tokens": answers}
    heads = [{"kind": "head", "layer": h.layer, "head": h.head} for h in truth.induction_heads]
    prev = [{"kind": "head", "layer": h.layer, "head": h.head} for h in truth.previous_token_heads]
    # The organism's induction heads are redundant (each alone suffices), so each is measured
    # with its copies ablated throughout; random controls avoid the rest of the circuit.
    for i, head in enumerate(heads):
        r = call(
            target,
            "ablate",
            {
                "prompts": prompts,
                "metric": rate,
                "components": [head],
                "method": "zero",
                "background": heads[:i] + heads[i + 1 :],
                "control_exclude": prev,
                "n_random": 3,
            },
        )
        assert r.baseline >= 0.5, r.summary  # this head alone still does induction
        assert r.effect <= -0.5 and r.effect < r.control - 0.3, r.summary
    group = call(target, "ablate", {"prompts": prompts, "metric": rate, "components": heads, "method": "zero"})
    assert group.baseline >= 0.9 and group.effect <= -0.5
    # The previous-token head is a single point of failure: alone, against random single heads.
    single = call(
        target, "ablate", {"prompts": prompts, "metric": rate, "method": "mean", "n_random": 7, "components": prev[:1]}
    )
    assert single.effect <= -0.3 and single.effect < single.control - 0.25


def test_patching_localises_the_backdoor_trigger(builtin):
    folder = builtin("backdoor")
    target = load(f"organism:{folder}")
    trig = load_manifest(folder).mechanisms[0].tokens
    clean = [f"t1 t3 {' '.join(trig)} t4 t6 <q>", f"t9 t3 t4 {' '.join(trig)} t6 <q>"]
    corr = ["t1 t3 t8 t10 t4 t6 <q>", "t9 t3 t4 t8 t10 t6 <q>"]
    r = call(target, "patch", {"clean": clean[:1], "corrupted": corr[:1]})
    grid = np.array(r.effects)
    last = grid.shape[1] - 1
    assert grid[-1, last] > 0.95  # the final residual carries everything
    assert grid[0].max() < 0.2  # no single embedding restores a two-token trigger
    layer, pos = np.unravel_index(grid[:, :last].argmax(), grid[:, :last].shape)
    assert r.rows[layer] == "blocks.1.hook_resid_pre" and pos in (3, 4, 5)  # trigger at 3-4
    heads = call(target, "patch", {"clean": clean, "corrupted": corr, "over": "heads"})
    assert heads.effect > heads.control + 0.3


def test_sae_on_features_explains_variance_and_finds_categories(builtin, tmp_path):
    folder = builtin("features")
    target = load(f"organism:{folder}")
    cats = load_manifest(folder).mechanisms[0].categories
    corpus = sequence_prompts(resolve_spec("features"), 1500)
    hook = "blocks.0.hook_resid_post"
    r = call(
        target,
        "sae_train",
        {"hook": hook, "corpus": {"prompts": corpus}, "out": str(tmp_path / "sae"), "d_sae": 64, "k": 4, "steps": 1500},
    )
    assert r.stats.variance_explained >= 0.8 and r.stats.dark_matter == pytest.approx(1 - r.stats.variance_explained)
    ctx = call(
        target,
        "sae_contexts",
        {"sae": r.path, "features": list(range(64)), "corpus": {"prompts": corpus[:500]}, "k": 20},
    )
    member = {t: c.name for c in cats for t in c.tokens}
    pure = set()
    for fc in ctx.features:
        names = {member.get(c.tokens[-1]) for c in fc.top}
        if len(fc.top) >= 10 and len(names) == 1 and None not in names:
            pure.add(names.pop())
    assert len(pure) >= 3, f"categories with a pure feature: {pure}"
    stats = call(target, "sae_stats", {"sae": r.path, "corpus": {"prompts": corpus[:300]}})
    assert stats.stats.variance_explained >= 0.75
    top = call(target, "sae_features", {"sae": r.path, "prompts": corpus[:5], "position": "all"})
    assert top.active and top.recurring


@pytest.mark.parametrize(
    "tool, payload, says",
    [
        (
            "probe",
            {"positive": ["t1 <q>"] * 5, "negative": ["t2 <q>"] * 5, "hooks": ["blocks.0.hook_resid_pots"]},
            "nearest valid names: blocks.0.hook_resid_post",
        ),
        (
            "probe",
            {"positive": ["t1 <q>"] * 5, "negative": ["t2 <q>"] * 5, "hooks": ["blocks.7.hook_resid_post"]},
            "layer 7 is out of range",
        ),
        ("probe", {"positive": [], "negative": ["t2 <q>"] * 5}, "at least 4"),
        ("probe", {"positive": ["t1 <q>"] * 5, "negative": ["zz qq <q>"] * 5}, "does not know: zz, qq"),
        ("patch", {"clean": ["t1 <q>", "t2 <q>"], "corrupted": ["t3 <q>"]}, "needs pairs"),
        ("patch", {"clean": ["t1 t2 <q>"], "corrupted": ["t3 <q>"]}, "token-aligned"),
        ("patch", {"clean": ["t1 t2 <q>"], "corrupted": ["t1 t2 <q>"]}, "nothing to patch"),
        (
            "ablate",
            {
                "prompts": ["t1 <q>"],
                "metric": {"kind": "loss"},
                "components": [{"kind": "head", "layer": 0, "head": 9}],
            },
            "head 9 is out of range",
        ),
        (
            "ablate",
            {
                "prompts": ["t1 <q>"],
                "metric": {"kind": "loss"},
                "components": [{"kind": "neuron", "layer": 0, "neuron": 99999}],
            },
            "neuron 99999 is out of range",
        ),
        (
            "ablate",
            {
                "prompts": ["t1 t2 t1 t2", "t1 t2 <q>"],
                "metric": {"kind": "copy"},
                "components": [{"kind": "head", "layer": 0, "head": 0}],
            },
            "prompt #1 has no repeated token",
        ),
        (
            "steer",
            {
                "hook": "blocks.0.hook_resid_mid",
                "prompts": ["t1 <q>"],
                "metric": {"kind": "rate", "token": "t1"},
                "positive": ["t1 <q>"],
                "negative": ["t1 <q>"],
            },
            "zero or not finite",
        ),
        (
            "steer",
            {
                "hook": "blocks.0.hook_resid_mid",
                "prompts": ["t1 <q>"],
                "metric": {"kind": "rate", "token": "t1"},
                "direction_id": "dir-nope",
            },
            "unknown direction",
        ),
        (
            "steer",
            {
                "hook": "blocks.0.hook_resid_mid",
                "prompts": ["t1 <q>"],
                "metric": {"kind": "rate"},
                "positive": ["t1 <q>"],
                "negative": ["t2 <q>"],
            },
            "needs `token`",
        ),
        (
            "steer",
            {
                "hook": "blocks.0.hook_resid_mid",
                "prompts": ["t1 <q>"],
                "metric": {"kind": "rate", "token": "t1 t2"},
                "positive": ["t1 <q>"],
                "negative": ["t2 <q>"],
            },
            "not a single token",
        ),
        ("sae_stats", {"sae": "/nonexistent/sae"}, "not found"),
        ("sae_stats", {"sae": "some-release/some-id"}, "unknown SAE release 'some-release'"),
        ("sae_stats", {"sae": "gpt2-small-res-jb/blocks.0.hook_resid_pre"}, "HF_HUB_OFFLINE=1"),
        ("probe", {"positive": ["t1 <q>"] * 5, "negative": ["t2 <q>"] * 5, "layer": 3}, "layer: unknown field"),
        ("nonsense", {}, "unknown tool"),
        (
            "activations",
            {"prompts": ["t1 t2 <q>"], "hooks": ["blocks.0.attn.hook_pattern"], "positions": "all"},
            "use the `attention` tool",
        ),
    ],
)
def test_bad_tool_input_is_a_user_error(builtin, tool, payload, says):
    target = load(f"organism:{builtin('eval_aware')}")
    with pytest.raises(UserError, match=says.replace("(", r"\(").replace("`", "`")):
        call(target, tool, payload)


def test_nan_activations_are_refused(builtin):
    import torch

    target = load(f"organism:{builtin('eval_aware')}")
    with torch.no_grad():
        target.model.blocks[0].attn.W_O[0, 0, 0] = float("nan")
    with pytest.raises(UserError, match="NaN"):
        call(target, "activations", {"prompts": ["t1 t2 <q>"], "hooks": ["blocks.0.hook_resid_post"]})


def test_activations_stream_to_disk(builtin, tmp_path):
    target = load(f"organism:{builtin('eval_aware')}")
    prompts = ["t1 t2 t3 <q>", "t4 <q>", "t5 t6 <q>"]
    r = call(
        target,
        "activations",
        {
            "prompts": prompts,
            "hooks": ["blocks.0.hook_resid_post", "blocks.0.attn.hook_z"],
            "positions": "all",
            "out": str(tmp_path / "acts"),
            "batch_size": 2,
        },
    )
    assert r.rows == 5 + 3 + 4  # BOS + tokens
    assert r.hooks["blocks.0.attn.hook_z"].shape == [12, 4, 32]
    on_disk = np.load(tmp_path / "acts" / "blocks.0.hook_resid_post.npy")
    from tools.activations import harvest
    from tools.prompts import encode

    # the same batches as the call (a different batch size changes float32 sums in the last bits)
    again = harvest(target.model, encode(target.model, prompts), ["blocks.0.hook_resid_post"], "all", batch_size=2).acts
    assert np.allclose(on_disk, again["blocks.0.hook_resid_post"].numpy(), atol=1e-6)


def test_ablation_kinds_and_methods_on_the_marker(eval_aware):
    target, manifest, marked, switched, clean = eval_aware
    hook = manifest.mechanisms[0].hooks[0]
    steer = call(
        target,
        "steer",
        {
            "hook": hook,
            "positive": marked[:100],
            "negative": clean[:100],
            "prompts": marked[:20],
            "metric": {"kind": "rate", "tokens": switched[:20]},
            "coefficients": [-1.0, -0.5],
        },
    )
    rate = {"kind": "rate", "tokens": switched[100:160]}
    # Resampling the marker direction from unmarked prompts is not possible within one set, so
    # project it out (zero): the switch must suffer more than for random directions.
    direction = call(
        target,
        "ablate",
        {
            "prompts": marked[100:160],
            "metric": rate,
            "method": "zero",
            "components": [{"kind": "direction", "direction_id": steer.direction_id}],
            "positions": "last",
        },
    )
    assert direction.effect < direction.control - 0.3
    neuron = call(
        target,
        "ablate",
        {
            "prompts": marked[100:160],
            "metric": rate,
            "method": "resample",
            "components": [{"kind": "neuron", "layer": 0, "neuron": 3}],
            "n_random": 2,
        },
    )
    assert len(neuron.control_components) == 2 and neuron.components == ["L0N3"]
    assert -1.0 <= neuron.effect <= 1.0


def test_steering_along_an_sae_feature_and_ablating_it(builtin, tmp_path):
    folder = builtin("features")
    target = load(f"organism:{folder}")
    corpus = sequence_prompts(resolve_spec("features"), 600, seed=5)
    sae = call(
        target,
        "sae_train",
        {
            "hook": "blocks.0.hook_resid_post",
            "corpus": {"prompts": corpus},
            "out": str(tmp_path / "sae"),
            "d_sae": 32,
            "k": 4,
            "steps": 300,
        },
    )
    top = call(target, "sae_features", {"sae": sae.path, "prompts": corpus[:20], "position": "last"})
    feature = top.recurring[0][0]
    r = call(
        target,
        "steer",
        {
            "hook": "blocks.0.hook_resid_post",
            "sae": sae.path,
            "feature": feature,
            "prompts": corpus[:20],
            "metric": {"kind": "loss"},
            "coefficients": [-1.0, 1.0],
        },
    )
    assert r.direction_norm > 0 and len(r.curve) == 3
    ab = call(
        target,
        "ablate",
        {
            "prompts": corpus[:20],
            "metric": {"kind": "loss"},
            "n_random": 2,
            "components": [{"kind": "sae_feature", "sae": sae.path, "feature": feature}],
        },
    )
    assert ab.components == [f"feature {feature}"] and len(ab.control_components) == 2


@pytest.mark.parametrize(
    "architecture, saved_as", [("jumprelu", "jumprelu"), ("topk", "topk"), ("batchtopk", "jumprelu")]
)
def test_sae_folders_load_with_saelens_itself(tiny_organism, tmp_path, architecture, saved_as):
    from sae_lens import SAE

    target = load(f"organism:{tiny_organism}")
    r = call(
        target,
        "sae_train",
        {
            "hook": "blocks.0.hook_resid_post",
            "architecture": architecture,
            "corpus": {"random": 300, "length": 6},
            "out": str(tmp_path / "sae"),
            "d_sae": 32,
            "k": 4,
            "steps": 300,
        },
    )
    sae = SAE.load_from_disk(r.path)
    assert sae.cfg.architecture() == saved_as and sae.cfg.d_sae == 32
    assert sae.cfg.metadata.hook_name == "blocks.0.hook_resid_post"
    assert sae.cfg.metadata.model_name == target.model_id
    assert sae.cfg.metadata.training_architecture == architecture and sae.cfg.metadata.l0 > 0
    assert 0 < r.stats.l0 <= 32 and r.stats.variance_explained > 0.2
    assert r.log[-1].step == 300 and r.log[-1].lr == 0.0  # SAELens's schedule: decayed to 0 at the end
    assert (tmp_path / "sae" / "interp_training.json").is_file()
    assert (tmp_path / "sae" / "sparsity.safetensors").is_file()  # as SAELens's runner saves a final SAE
