"""Attribution graph of one prompt: which transcoder features, MLP errors and tokens drive a logit.

The local replacement model (Ameisen et al. 2025, "Circuit tracing"; circuit-tracer builds the same):
every MLP is replaced by its transcoder plus an error node (true MLP output - transcoder output),
and the attention patterns and every normalisation scale (`*.hook_scale`) are frozen at their values
on the clean forward pass. What remains between the sources (token embeddings, features through
their decoder rows, errors, biases) and the targets (logits, feature pre-activations) is linear, so
a target is exactly the sum of its direct effects: for each source, the gradient of the target at
the point where the source enters the residual stream, times the source's vector there.

Built natively with TransformerLens hooks: circuit-tracer 0.5 pins transformers <= 4.57.3 and this
project's transformer-lens 3.9 needs transformers >= 5.9, so the two cannot share an environment.
The JSON it writes is circuit-tracer's graph format (tools/graph_prune.py), for its viewer and
Neuronpedia's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Record, ToolInput, ToolResult
from tools.cost import BACKWARD_FACTOR, Meter
from tools.errors import UserError
from tools.graph_prune import Layout, prune, viewer_json, write_viewer_files
from tools.prompts import encode, token_id
from tools.spec import ToolSpec
from tools.transcoder import MANIFEST, check_mlp_hooks, in_hook, load_transcoder, out_hook, transcoder_layer

if TYPE_CHECKING:
    from sae_lens.saes.transcoder import Transcoder
    from torch import Tensor
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

    from tools.target import Target

FIRST = "blocks.0.hook_resid_pre"
"""Token (+ positional) embeddings enter here: the embedding nodes' vectors."""
TOLERANCE = 1e-3
"""Largest |logit - (sum of its edges + bias)| the check accepts."""


class GraphInput(ToolInput):
    """Attribution graph of one prompt over per-layer transcoders: features, errors and tokens behind a logit."""

    prompt: str
    """The prompt; the graph explains the logits at its last token."""
    transcoders: str | list[str]
    """A folder from transcoder_train (one sub-folder per layer), or one SAELens transcoder folder per layer."""
    targets: list[str] | None = None
    """Tokens whose logits to explain; default the most likely next tokens (see max_logits, logit_prob)."""
    max_logits: int = Field(10, ge=1, le=100)
    """Most logit nodes when targets are not given."""
    logit_prob: float = Field(0.95, gt=0, le=1)
    """Without targets: take the likeliest tokens until their probabilities sum to this."""
    node_threshold: float = Field(0.8, ge=0, le=1)
    """Keep the feature/error nodes carrying this share of the total influence on the logits."""
    edge_threshold: float = Field(0.98, ge=0, le=1)
    """Then keep the edges carrying this share of the total edge influence."""
    batch_size: int = Field(64, ge=1, le=4096)
    """Target nodes per backward pass."""
    max_adjacency_mb: float = Field(1024, gt=0)
    """Refuse a graph whose dense adjacency matrix (nodes^2 floats) would exceed this many MiB."""
    top: int = Field(10, ge=1, le=200)
    """Features listed in the result, by influence."""
    out: str | None = None
    """JSON file to write the pruned graph to (circuit-tracer / Neuronpedia format); none written without it."""


class GraphNode(Record):
    """A feature node of the graph."""

    layer: int
    """Block whose MLP it belongs to."""
    position: int
    """Token position."""
    token: str
    """The token there."""
    feature: int
    """Transcoder feature index."""
    activation: float
    """Its activation on the prompt."""
    influence: float
    """Its total influence on the logits (share of all nodes' influence, along every path)."""
    logit_effect: float
    """Its direct effect on the first target logit (an edge weight)."""


class LogitCheck(Record):
    """Does the graph account for a target logit?"""

    token: str
    """The output token."""
    probability: float
    """Its probability after the prompt."""
    logit: float
    """Its logit in the unmodified model."""
    features: float
    """Sum of the direct edges from feature nodes."""
    errors: float
    """Sum of the direct edges from error nodes (what the transcoders miss)."""
    embeddings: float
    """Sum of the direct edges from token embeddings."""
    bias: float
    """Bias terms (attention, LayerNorm, transcoder decoder and unembedding biases)."""
    residual: float
    """logit - (features + errors + embeddings + bias): 0 up to float error when the graph is exact."""


class GraphResult(ToolResult):
    """Sizes, the logit check, the most influential features, and where the JSON went."""

    path: str | None
    """The JSON file (circuit-tracer / Neuronpedia graph format), when `out` was given."""
    n_tokens: int
    """Prompt length in tokens."""
    active_features: int
    """Transcoder features active at any position and layer (all of them are graph nodes)."""
    nodes: int
    """Nodes before pruning (features, errors, embeddings, logits)."""
    kept_nodes: int
    """Nodes after pruning."""
    kept_edges: int
    """Edges after pruning."""
    logits: list[LogitCheck]
    """Per target logit: its decomposition into the graph's edges."""
    max_residual: float
    """Largest |residual| over the target logits (exact graph: < 1e-3)."""
    error_share: float
    """Share of the first target's direct |edge| mass that comes from error nodes (what the transcoders miss)."""
    top_features: list[GraphNode]
    """The most influential feature nodes."""
    effect: float
    """Share of the first target's direct |edge| mass from features (1 - error and embedding shares)."""
    control: float
    """The same share from error nodes: what the replacement leaves unexplained."""


@dataclass
class Prepared:
    """Everything known after the clean forward pass: enough to size the graph and to estimate it."""

    tokens: Tensor
    transcoders: dict[int, Transcoder]
    folders: dict[int, str]
    cache: dict[str, Tensor]
    logits: Tensor
    features: list[tuple[int, int, int]]
    activations: Tensor
    logit_ids: list[int]
    logit_probs: list[float]
    layout: Layout


def _folders(model: HookedTransformer, spec: str | list[str]) -> list[Path]:
    if isinstance(spec, list):
        if not spec:
            raise UserError("transcoders is empty: give the folder transcoder_train wrote, or one folder per layer")
        return [Path(p).expanduser() for p in spec]
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise UserError(
            f"transcoder folder {root} not found: give the folder transcoder_train wrote "
            "(`interp tool transcoder_train --arg out=DIR`)"
        )
    if (root / "cfg.json").is_file():
        return [root]
    subs = sorted(p for p in root.iterdir() if (p / "cfg.json").is_file())
    if not subs:
        raise UserError(
            f"{root} holds no transcoder folders (sub-folders with cfg.json); "
            f"transcoder_train writes layer_0/, layer_1/, ... and {MANIFEST}"
        )
    return subs


def load_set(model: HookedTransformer, spec: str | list[str]) -> tuple[dict[int, Transcoder], dict[int, str]]:
    """One transcoder per layer of the model, each checked against it."""
    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    device = str(model.cfg.device)
    found: dict[int, Transcoder] = {}
    where: dict[int, str] = {}
    for path in _folders(model, spec):
        tc = load_transcoder(path, device)
        layer = transcoder_layer(tc, path)
        if layer >= n_layers:
            raise UserError(
                f"transcoder {path} is for layer {layer}, but the model has layers 0..{n_layers - 1}: "
                "it was trained on another model"
            )
        if layer in found:
            raise UserError(f"two transcoders for layer {layer}: {where[layer]} and {path}")
        if tc.cfg.d_in != d_model or tc.cfg.d_out != d_model:
            raise UserError(
                f"transcoder {path} maps d_in={tc.cfg.d_in} -> d_out={tc.cfg.d_out}, but this model's "
                f"d_model is {d_model}: it was trained on another model"
            )
        if getattr(tc, "W_skip", None) is not None or tc.cfg.normalize_activations != "none":
            raise UserError(
                f"transcoder {path}: skip connections and input normalisation are not supported in "
                "graphs (the replacement must be linear in the features)"
            )
        check_mlp_hooks(model, layer)
        found[layer], where[layer] = tc, str(path)
    missing = [layer for layer in range(n_layers) if layer not in found]
    if missing:
        raise UserError(
            f"no transcoder for layer(s) {missing}: a graph replaces every MLP, so it needs one "
            f"transcoder per layer 0..{n_layers - 1} (train them with transcoder_train)"
        )
    return found, where


def _frozen_names(model: HookedTransformer) -> list[str]:
    """Every normalisation scale and attention pattern: what the replacement model holds fixed."""
    return [n for n in model.hook_dict if n.endswith((".hook_scale", "attn.hook_pattern"))]


def prepare(target: Target, inp: GraphInput, meter: Meter) -> Prepared:
    """The clean forward pass, the active features and target logits, and the size check."""
    import torch

    model = target.model
    if getattr(model.cfg, "output_logits_soft_cap", 0) and model.cfg.output_logits_soft_cap > 0:
        raise UserError(
            "this model soft-caps its logits (a non-linearity after the last layer): the graph's "
            "logits would not be linear in the features"
        )
    transcoders, folders = load_set(model, inp.transcoders)
    enc = encode(model, [inp.prompt])
    tokens = enc.tokens
    n_layers = model.cfg.n_layers
    names = _frozen_names(model) + [FIRST] + [h for layer in range(n_layers) for h in (in_hook(layer), out_hook(layer))]
    logits, cache = meter.cache(model, tokens, names)
    cache = {n: cache[n].clone() for n in names}  # out of inference mode: the frozen pass tracks gradients
    feats, acts = [], []
    with torch.inference_mode():
        for layer in range(n_layers):
            a = transcoders[layer].encode(cache[in_hook(layer)][0].float())
            pos, idx = a.nonzero(as_tuple=True)
            feats += [(layer, p, f) for p, f in zip(pos.tolist(), idx.tolist(), strict=True)]
            acts.append(a[pos, idx])
    last = logits[0, -1].float()
    probs = torch.softmax(last, -1)
    if inp.targets:
        ids = [token_id(model, t, "target") for t in inp.targets]
        if len(set(ids)) != len(ids):
            raise UserError("targets repeat a token: give each target once")
    else:
        top_p, top_i = probs.topk(min(inp.max_logits, len(probs)))
        cut = int(torch.searchsorted(torch.cumsum(top_p, 0), torch.tensor(inp.logit_prob, device=top_p.device))) + 1
        ids = top_i[:cut].tolist()
    layout = Layout(len(feats), n_layers, tokens.shape[1], len(ids))
    mib = layout.n_nodes**2 * 4 / 2**20
    if mib > inp.max_adjacency_mb:
        raise UserError(
            f"the graph would have {layout.n_nodes} nodes ({len(feats)} active features): its adjacency "
            f"matrix needs {mib:.3g} MiB, over max_adjacency_mb={inp.max_adjacency_mb:g}. Use a shorter "
            "prompt, sparser transcoders (smaller k), or raise max_adjacency_mb if memory allows"
        )
    activations = torch.cat(acts).float().clone() if acts else torch.zeros(0)
    return Prepared(
        tokens,
        transcoders,
        folders,
        cache,
        logits[0, -1].float().clone(),
        feats,
        activations,
        ids,
        [float(probs[i]) for i in ids],
        layout,
    )


def backward_rows(p: Prepared) -> int:
    """Target nodes, one gradient row each: the logits and every active feature."""
    return p.layout.n_logits + p.layout.n_features


def estimate(target: Target, inp: GraphInput) -> int:
    """Forward tokens the call charges: the clean pass, the frozen pass, the all-sources-zero pass, and
    one backward row per target node. The number of active features decides the rows, so this runs
    the one-prompt clean pass (uncharged) to count them, and refuses an oversized graph before any
    charged work."""
    p = prepare(target, inp, Meter())
    n_pos = p.layout.n_pos
    return 3 * n_pos + BACKWARD_FACTOR * n_pos * backward_rows(p)


def _frozen_forward(model: HookedTransformer, p: Prepared, embed: Tensor, mlp_out: list[Tensor]) -> Tensor:
    """Target values [n_logits + n_features] (logits, then feature pre-activations) of the replacement
    model, with `embed` entering block 0 and `mlp_out[L]` standing for each MLP's output."""
    from functools import partial

    import torch

    frozen = {n: p.cache[n] for n in _frozen_names(model)}
    seen: dict[int, Tensor] = {}
    n_layers = model.cfg.n_layers

    def fix(act: Tensor, hook: HookPoint) -> Tensor:
        return frozen[hook.name]

    def put_embed(act: Tensor, hook: HookPoint) -> Tensor:
        return embed

    def put_mlp(act: Tensor, hook: HookPoint, layer: int) -> Tensor:
        return mlp_out[layer]

    def keep(act: Tensor, hook: HookPoint, layer: int) -> None:
        seen[layer] = act

    hooks = [(n, fix) for n in frozen] + [(FIRST, put_embed)]
    for layer in range(n_layers):
        hooks += [(out_hook(layer), partial(put_mlp, layer=layer)), (in_hook(layer), partial(keep, layer=layer))]
    logits = model.run_with_hooks(p.tokens, fwd_hooks=hooks)
    values = [logits[0, -1, p.logit_ids].float()]
    by_layer: dict[int, list[int]] = {}
    for i, (layer, _, _) in enumerate(p.features):
        by_layer.setdefault(layer, []).append(i)
    pre = torch.zeros(len(p.features), device=logits.device)
    for layer, rows in by_layer.items():
        tc = p.transcoders[layer]
        pos = torch.tensor([p.features[i][1] for i in rows], device=logits.device)
        f = torch.tensor([p.features[i][2] for i in rows], device=logits.device)
        x = seen[layer][0, pos].float()
        w_enc, b_enc = tc.W_enc.detach().float(), tc.b_enc.detach().float()
        pre = pre.index_put((torch.tensor(rows, device=logits.device),), (x * w_enc[:, f].T).sum(-1) + b_enc[f])
    values.append(pre)
    return torch.cat(values)


@dataclass
class Built:
    """The unpruned graph."""

    prepared: Prepared
    adjacency: Tensor
    """[n_nodes, n_nodes], target row x source column: direct effects, in Layout order."""
    bias: Tensor
    """Per backward row (logits first, then features): the bias terms of that target, so that
    row sum + bias = the target's value (logit, or feature pre-activation)."""
    row_node: list[int]
    """Per backward row: its node index in the adjacency."""


def build(target: Target, inp: GraphInput, meter: Meter) -> Built:
    """The replacement model's direct-effect matrix for the prompt (see the module docstring)."""
    import torch

    model = target.model
    p = prepare(target, inp, meter)
    lay = p.layout
    n_layers, n_pos = lay.n_layers, lay.n_pos
    dev = p.logits.device
    # Sources as they enter the residual stream: the embeddings at block 0, each MLP's output split
    # into its features' decoder rows (scaled by activation), the decoder bias and the error.
    embed_vec = p.cache[FIRST].float()
    mlp_true = [p.cache[out_hook(layer)].float() for layer in range(n_layers)]
    feat_layer = torch.tensor([f[0] for f in p.features], dtype=torch.long, device=dev)
    feat_pos = torch.tensor([f[1] for f in p.features], dtype=torch.long, device=dev)
    feat_idx = torch.tensor([f[2] for f in p.features], dtype=torch.long, device=dev)
    dec_rows = torch.zeros(lay.n_features, model.cfg.d_model, device=dev)
    errors, b_dec = [], []
    for layer in range(n_layers):
        sel = (feat_layer == layer).nonzero().flatten()
        w_dec = p.transcoders[layer].W_dec.detach().float()
        dec_rows[sel] = p.activations[sel, None].to(dev) * w_dec[feat_idx[sel]]
        recon = torch.zeros(n_pos, model.cfg.d_model, device=dev).index_add_(0, feat_pos[sel], dec_rows[sel])
        b_dec.append(p.transcoders[layer].b_dec.detach().float())
        errors.append(mlp_true[layer][0] - recon - b_dec[layer])

    with meter.charge(n_pos, "the frozen forward pass"), torch.enable_grad():
        embed = embed_vec.clone().requires_grad_(True)
        mlps = [m.clone().requires_grad_(True) for m in mlp_true]
        values = _frozen_forward(model, p, embed, mlps)
    with meter.charge(n_pos, "the all-sources-zero forward pass"), torch.no_grad():
        constant = _frozen_forward(model, p, torch.zeros_like(embed_vec), [torch.zeros_like(m) for m in mlp_true])

    n_rows = backward_rows(p)
    adjacency = torch.zeros(lay.n_nodes, lay.n_nodes)
    bias = torch.zeros(n_rows)
    row_node = [lay.logit_start + j for j in range(lay.n_logits)] + list(range(lay.n_features))
    for start in range(0, n_rows, inp.batch_size):
        stop = min(start + inp.batch_size, n_rows)
        seeds = torch.zeros(stop - start, n_rows, device=dev)
        seeds[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
        # one batched backward (vmap over the seeds): row r is the gradient of target start + r
        with meter.charge(n_pos * (stop - start), "a backward pass", backward=True):
            grads = torch.autograd.grad(
                values, [embed, *mlps], grad_outputs=seeds, retain_graph=True, is_grads_batched=True, allow_unused=True
            )
        zero = torch.zeros(stop - start, *embed.shape, device=dev)
        g_embed, g_mlp = (grads[0] if grads[0] is not None else zero), [g if g is not None else zero for g in grads[1:]]
        block = torch.zeros(stop - start, lay.n_nodes, device=dev)
        for layer in range(n_layers):
            g = g_mlp[layer][:, 0]  # [rows, pos, d_model]: the gradient where this MLP writes
            sel = (feat_layer == layer).nonzero().flatten()
            block[:, sel] = torch.einsum("rnd,nd->rn", g[:, feat_pos[sel]], dec_rows[sel])
            at = lay.error_start + layer * n_pos
            block[:, at : at + n_pos] = torch.einsum("rpd,pd->rp", g, errors[layer])
            bias[start:stop] += torch.einsum("rpd,d->r", g, b_dec[layer]).cpu()
        block[:, lay.embed_start : lay.logit_start] = torch.einsum("rpd,pd->rp", g_embed[:, 0], embed_vec[0])
        adjacency[row_node[start:stop]] = block.cpu()
    bias += constant.cpu()
    return Built(p, adjacency, bias, row_node)


def run(target: Target, inp: GraphInput) -> GraphResult:
    meter = Meter()
    b = build(target, inp, meter)
    return _result(target, inp, b.prepared, b.adjacency, b.bias, meter)


def _result(target: Target, inp: GraphInput, p: Prepared, adjacency: Tensor, bias: Tensor, meter: Meter) -> GraphResult:
    import torch

    model = target.model
    lay = p.layout
    tok = [model.to_single_str_token(int(t)) for t in p.tokens[0].tolist()]
    names = [model.to_single_str_token(i) for i in p.logit_ids]
    checks = []
    for j in range(lay.n_logits):
        row = adjacency[lay.logit_start + j]
        parts = (
            float(row[: lay.error_start].sum()),
            float(row[lay.error_start : lay.embed_start].sum()),
            float(row[lay.embed_start : lay.logit_start].sum()),
            float(bias[j]),
        )
        logit = float(p.logits[p.logit_ids[j]])
        checks.append(
            LogitCheck(
                token=names[j],
                probability=round(p.logit_probs[j], 6),
                logit=round(logit, 6),
                features=round(parts[0], 6),
                errors=round(parts[1], 6),
                embeddings=round(parts[2], 6),
                bias=round(parts[3], 6),
                residual=float(logit - sum(parts)),
            )
        )
    weights = torch.tensor(p.logit_probs)
    if float(weights.sum()) <= 0:
        weights = torch.ones(lay.n_logits)
    pruned = prune(adjacency, lay, weights / weights.sum(), inp.node_threshold, inp.edge_threshold)
    first = adjacency[lay.logit_start, : lay.logit_start].abs()
    mass = float(first.sum()) or 1.0
    feat_share = float(first[: lay.error_start].sum()) / mass
    err_share = float(first[lay.error_start : lay.embed_start].sum()) / mass
    total_infl = float(pruned.influence[: lay.logit_start].sum())  # features, errors and embeddings
    order = torch.argsort(pruned.influence[: lay.n_features], descending=True)[: inp.top].tolist()
    top = [
        GraphNode(
            layer=p.features[i][0],
            position=p.features[i][1],
            token=tok[p.features[i][1]],
            feature=p.features[i][2],
            activation=round(float(p.activations[i]), 5),
            influence=round(float(pruned.influence[i]) / (total_infl or 1.0), 5),
            logit_effect=round(float(adjacency[lay.logit_start, i]), 5),
        )
        for i in order
    ]
    path = None
    if inp.out is not None:
        out = Path(inp.out)
        data = viewer_json(
            slug=out.stem,
            scan=target.model_id,
            transcoder_list=[p.folders[layer] for layer in range(lay.n_layers)],
            prompt=inp.prompt,
            prompt_tokens=tok,
            token_ids=p.tokens[0].tolist(),
            features=p.features,
            activations=p.activations.tolist(),
            logit_ids=p.logit_ids,
            logit_tokens=names,
            logit_probs=p.logit_probs,
            targets=[j == 0 or bool(inp.targets) for j in range(lay.n_logits)],
            adjacency=adjacency,
            layout=lay,
            pruned=pruned,
            node_threshold=inp.node_threshold,
        )
        write_viewer_files(data, out)
        path = str(out)
    max_res = max(abs(c.residual) for c in checks)
    kept_edges = int(pruned.edge_mask.sum())
    c0 = checks[0]
    return GraphResult(
        tool="graph",
        summary=(
            f"graph of {lay.n_nodes} nodes ({lay.n_features} active features) for {c0.token!r} "
            f"(p={c0.probability:.3f}): its logit {c0.logit:.3f} = features {c0.features:.3f} + errors "
            f"{c0.errors:.3f} + embeddings {c0.embeddings:.3f} + bias {c0.bias:.3f} (largest residual over the "
            f"targets {max_res:.1e}, {'within' if max_res <= TOLERANCE else 'OVER'} {TOLERANCE:g}); pruned to "
            f"{int(pruned.node_mask.sum())} nodes, {kept_edges} edges"
            + (f"; top feature L{top[0].layer}/{top[0].feature} at {top[0].token!r}" if top else "")
        ),
        cost=meter.cost(),
        path=path,
        n_tokens=lay.n_pos,
        active_features=lay.n_features,
        nodes=lay.n_nodes,
        kept_nodes=int(pruned.node_mask.sum()),
        kept_edges=kept_edges,
        logits=checks,
        max_residual=max_res,
        error_share=round(err_share, 4),
        top_features=top,
        effect=round(feat_share, 4),
        control=round(err_share, 4),
    )


SPEC = ToolSpec(
    name="graph", input_model=GraphInput, result_model=GraphResult, run=run, estimate=estimate, tier="observational"
)
