"""One pass over a labeling corpus: every requested feature's activations, kept sparse.

The corpus is run once, prompts sorted by length and batched with their neighbours (each batch
padded only to its own longest prompt), through `tools.activations.harvest`, which stops after the
SAE's layer. The SAE encodes the harvested rows in chunks of at most `DENSE_BUDGET` floats
([rows, d_sae] float32, 256 MB), and only the non-zero activations are kept, grouped by feature
(compressed sparse columns): memory grows with rows x L0, not rows x d_sae, so a 16k-feature SAE
over a large corpus fits. (Chunks are by rows, not by features: a TopK SAE picks its k features
per row among all of them, so its features cannot be encoded apart.)

The model's next-token prediction is needed only at the positions that become examples an
explainer reads. When asked, the harvest also keeps the residual stream after the SAE's layer,
and `predict` finishes the forward from there (`start_at_layer`) for just the prompts holding
those positions, each cut after its last needed position, and unembeds only those positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tools.hooks import hook_layer

if TYPE_CHECKING:
    from sae_lens import SAE
    from torch import Tensor
    from transformer_lens import HookedTransformer

DENSE_BUDGET = 1 << 26
"""Most floats one encoded chunk may hold ([rows, d_sae] float32: 256 MB)."""


@dataclass
class CorpusActivations:
    """Feature activations over a corpus, one row per real (prompt, position), sparse by feature."""

    prompt: np.ndarray
    """[rows] corpus index of each row's prompt."""
    position: np.ndarray
    """[rows] position of the row in its prompt."""
    start: np.ndarray
    """[prompts] first row of each prompt (its positions follow in order)."""
    length: np.ndarray
    """[prompts] real tokens of each prompt (BOS included)."""
    ids: np.ndarray
    """[rows] token id at each row."""
    features: list[int]
    """The encoded features; column j is feature features[j]."""
    indptr: np.ndarray
    """[features + 1] column j's non-zeros are rows[indptr[j]:indptr[j + 1]]."""
    rows: np.ndarray
    """[non-zeros] row of each non-zero activation, grouped by column."""
    values: np.ndarray
    """[non-zeros] the activations."""
    x: Tensor | None = None
    """[rows, d_in] the SAE hook's activations (kept for steering from the hook onwards)."""
    resid: Tensor | None = None
    """[rows, d_model] residual stream entering block `resume_layer` (kept only for predictions)."""
    resume_layer: int = 0
    """The block `predict` resumes the forward at."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall clock of each stage (harvest, encode, predict)."""

    @property
    def n_rows(self) -> int:
        return len(self.prompt)

    def column(self, j: int) -> np.ndarray:
        """Column j as a dense [rows] float32 array."""
        col = np.zeros(self.n_rows, dtype=np.float32)
        lo, hi = self.indptr[j], self.indptr[j + 1]
        col[self.rows[lo:hi]] = self.values[lo:hi]
        return col

    def row(self, prompt: int, position: int) -> int:
        return int(self.start[prompt]) + position

    def predict(self, model: HookedTransformer, rows: np.ndarray, batch_size: int = 64) -> dict[int, int]:
        """row -> the model's top next-token id there, for `rows` only (needs the kept residual)."""
        import time

        import torch

        if self.resid is None:
            raise ValueError("predict needs the residual: harvest with keep_resid=True")
        t0 = time.perf_counter()
        rows = np.unique(rows)
        need: dict[int, list[int]] = {}
        for r in rows.tolist():
            need.setdefault(int(self.prompt[r]), []).append(r)
        # each prompt runs only up to its last needed position; similar lengths share a batch
        prompts = sorted(need, key=lambda p: max(self.position[need[p]]))
        out: dict[int, int] = {}
        d = self.resid.shape[1]
        with torch.inference_mode():
            for i in range(0, len(prompts), batch_size):
                group = prompts[i : i + batch_size]
                cut = [int(max(self.position[need[p]])) + 1 for p in group]
                x = torch.zeros((len(group), max(cut), d), dtype=self.resid.dtype)
                for b, (p, n) in enumerate(zip(group, cut, strict=True)):
                    s = int(self.start[p])
                    x[b, :n] = self.resid[s : s + n]
                x = x.to(model.cfg.device, model.cfg.dtype)
                # stop_at_layer=n_layers returns the residual before ln_final: unembed only what is needed
                res = model(x, start_at_layer=self.resume_layer, stop_at_layer=model.cfg.n_layers)
                bi = [b for b, p in enumerate(group) for _ in need[p]]
                qi = [int(self.position[r]) for p in group for r in need[p]]
                picked = res[bi, qi][None]
                logits = model.unembed(model.ln_final(picked))[0]
                for r, t in zip([r for p in group for r in need[p]], logits.argmax(-1).tolist(), strict=True):
                    out[r] = int(t)
        self.seconds["predict"] = self.seconds.get("predict", 0.0) + time.perf_counter() - t0
        return out


def _resid_hook(hook: str) -> tuple[str, int]:
    """(residual hook to keep, block to resume at): the residual after the SAE hook's block."""
    layer = hook_layer(hook)
    if layer is None:
        return "blocks.0.hook_resid_pre", 0
    return f"blocks.{layer}.hook_resid_post", layer + 1


def harvest_features(
    model: HookedTransformer,
    sae: SAE,
    features: list[int],
    corpus: list[str],
    keep_resid: bool,
    batch_size: int = 64,
) -> CorpusActivations:
    """Run the corpus once (length-sorted batches, stopping after the SAE's layer) and encode `features`."""
    import time

    import torch

    from tools.activations import harvest
    from tools.prompts import Encoded, encode
    from tools.sae import sae_encode

    t0 = time.perf_counter()
    hook = sae.cfg.metadata.hook_name
    resid_hook, resume = _resid_hook(hook)
    hooks = [hook] + ([resid_hook] if keep_resid and resid_hook != hook else [])
    enc = encode(model, corpus, "corpus")
    lengths = enc.lengths.cpu().numpy()
    order = np.argsort(lengths, kind="stable")
    acts: list[Tensor] = []
    resid: list[Tensor] = []
    for i in range(0, len(order), batch_size):
        idx = torch.as_tensor(order[i : i + batch_size], device=enc.tokens.device)
        lens = enc.lengths[idx]
        width = int(lens.max())
        part = Encoded(enc.tokens[idx, :width], lens, [corpus[int(j)] for j in idx.tolist()])
        h = harvest(model, part, hooks, "all", batch_size=len(idx))
        acts.append(h.acts[hook].flatten(1))
        if keep_resid:
            resid.append(h.acts[resid_hook])
    x = torch.cat(acts)
    # rows are in sorted-prompt order, each prompt's positions in order
    sorted_len = lengths[order]
    prompt = np.repeat(order, sorted_len)
    position = np.concatenate([np.arange(n) for n in sorted_len])
    start = np.zeros(len(corpus), dtype=np.int64)
    start[order] = np.concatenate([[0], np.cumsum(sorted_len)[:-1]])
    ids = enc.tokens.cpu().numpy()[prompt, position]
    t1 = time.perf_counter()

    cols = torch.as_tensor(features)
    d_sae = int(sae.cfg.d_sae)
    step = max(1, DENSE_BUDGET // d_sae)
    rr: list[np.ndarray] = []
    jj: list[np.ndarray] = []
    vv: list[np.ndarray] = []
    with torch.inference_mode():
        for a in range(0, len(x), step):
            z = sae_encode(sae, x[a : a + step])
            if len(features) != d_sae or features != list(range(d_sae)):
                z = z[:, cols.to(z.device)]
            r, j = z.nonzero(as_tuple=True)
            rr.append((r + a).cpu().numpy())
            jj.append(j.cpu().numpy())
            vv.append(z[r, j].float().cpu().numpy())
    r_all, j_all, v_all = np.concatenate(rr), np.concatenate(jj), np.concatenate(vv)
    by = np.lexsort((r_all, j_all))
    indptr = np.searchsorted(j_all[by], np.arange(len(features) + 1)).astype(np.int64)
    return CorpusActivations(
        prompt=prompt,
        position=position,
        start=start,
        length=lengths,
        ids=ids,
        features=list(features),
        indptr=indptr,
        rows=r_all[by],
        values=v_all[by].astype(np.float32),
        x=x,
        resid=torch.cat(resid) if keep_resid else None,
        resume_layer=resume,
        seconds={"harvest": t1 - t0, "encode": time.perf_counter() - t1},
    )
