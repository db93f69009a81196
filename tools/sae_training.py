"""SAE training through SAELens's own trainer, fed with activations harvested here.

`SaeTraining` holds a SAELens `TrainingSAE` (TopK, BatchTopK or JumpReLU) and a SAELens
`SAETrainer`, and drives the trainer one step at a time through its public seams (`step`,
`maybe_reset_sparsity`, `set_final_sae_metadata`), as SAELens's own `MultiSAETrainer` does. What
SAELens gives: Adam with gradient-norm clipping, its learning-rate schedule (linear warm-up, linear
decay to 0), coefficient warm-up (JumpReLU's L0 penalty), dead-feature tracking (a feature that has
not fired for `dead_feature_window` steps is dead, and TopK's auxiliary loss pulls it towards the
residual the live features miss), feature-sparsity windows, activation-norm scaling folded into the
saved weights, the L0 / dead-feature counts written into `cfg.json`'s metadata, and its per-step
metrics (loss, MSE, explained variance, L0, dead features, learning rate), kept here as a log
instead of sent to wandb (wandb is off).

Why not `LanguageModelSAETrainingRunner` or `SAETrainer.fit()`:
- the runner harvests its own activations: it runs the model over a Hugging Face dataset in fixed
  `context_size` windows through its `ActivationsStore`. Here activations come from this project's
  hooks on any TransformerLens model (`tools.activations.harvest`), over the call's corpus, padding
  masked out, every forward pass charged by the Meter (the budget's estimate is that charge) and
  checked against the deadline. The store's passes would be neither charged nor checked;
- `fit()` runs until `total_training_samples` with no way to stop: here the cooperative deadline is
  checked before every step, and a stopped call saves and returns the SAE trained so far (the
  same finishing steps `fit()` runs after its loop: the norm scaling folded, the metadata set).
No loop of our own remains beyond calling `step` and checking the deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tools.base import Record
from tools.errors import UserError

if TYPE_CHECKING:
    import torch
    from sae_lens.saes.sae import TrainingSAE, TrainStepOutput
    from sae_lens.training.sae_trainer import SAETrainer
    from torch import Tensor

    from tools.sae import SaeTrainInput

# Weights, gradients and Adam's two moments of W_enc and W_dec, plus a batch's feature activations.
MAX_TRAINING_BYTES = 8 << 30
# Training-log entries kept per call (evenly spaced, plus the last step taken).
LOG_POINTS = 20


class SaeTrainLog(Record):
    """SAELens's training metrics at one step (what its trainer would log to wandb), on that step's batch."""

    step: int
    """Optimiser steps done."""
    loss: float
    """Total loss (MSE plus the architecture's auxiliary or sparsity losses)."""
    mse_loss: float
    """Reconstruction loss: squared error summed over the hook's width, mean over the batch."""
    explained_variance: float
    """1 - squared error / variance, on the batch (in the scaled space when `normalize` is on)."""
    l0: float
    """Mean active features per row of the batch."""
    dead_features: int
    """Features that have not fired for `dead_feature_window` steps."""
    lr: float
    """Learning rate after the step (warm-up and decay)."""


def schedule_steps(steps: int, fraction: float) -> int:
    """Steps of a warm-up or decay phase: SAELens's linear warm-up needs 0 or at least 2 steps."""
    n = round(steps * fraction)
    return n if n >= 2 else 0


class SaeTraining:
    """One SAE and SAELens's trainer for it, stepped by the caller (who checks the deadline in between)."""

    def __init__(self, inp: SaeTrainInput, d_in: int, d_sae: int, device: str) -> None:
        need = 4 * (2 * d_in * d_sae * 4 + 3 * inp.batch_size * d_sae)
        if need > MAX_TRAINING_BYTES:
            raise UserError(
                f"an SAE of {d_sae} features on {d_in}-wide activations with batch_size {inp.batch_size} "
                f"needs ~{need / 2**30:.1f} GiB to train (limit {MAX_TRAINING_BYTES / 2**30:.0f} GiB); "
                "lower d_sae or batch_size"
            )
        if inp.architecture in ("topk", "batchtopk") and inp.k > d_sae:
            raise UserError(f"k ({inp.k}) must be <= d_sae ({d_sae})")
        if inp.lr_warm_up + inp.lr_decay > 1:
            raise UserError(
                f"lr_warm_up ({inp.lr_warm_up}) + lr_decay ({inp.lr_decay}) is more than all the steps; "
                "make their sum at most 1"
            )
        from sae_lens.config import LoggingConfig, SAETrainerConfig
        from sae_lens.training.sae_trainer import SAETrainer

        self.sae = _training_sae(inp, d_in, d_sae, device)
        self.steps = inp.steps
        self.every = max(1, inp.steps // LOG_POINTS)
        self.log: list[SaeTrainLog] = []
        self._last: tuple[int, TrainStepOutput] | None = None
        cfg = SAETrainerConfig(
            total_training_samples=inp.steps * inp.batch_size,
            train_batch_size_samples=inp.batch_size,
            lr=inp.lr,
            lr_end=inp.lr,  # the constant schedule decays from lr itself
            lr_scheduler_name="constant",
            lr_warm_up_steps=schedule_steps(inp.steps, inp.lr_warm_up),
            lr_decay_steps=schedule_steps(inp.steps, inp.lr_decay),
            device=device,
            dead_feature_window=inp.dead_feature_window,
            # one window over the whole call: the saved L0 and densities cover all of training
            feature_sampling_window=max(inp.steps, 1),
            logger=LoggingConfig(log_to_wandb=False),
        )
        # The data provider is never read: batches are handed to `step` (as MultiSAETrainer does).
        self.trainer: SAETrainer[Any, Any] = SAETrainer(cfg=cfg, sae=self.sae, data_provider=iter(()))
        self.sae.train()

    def prepare(self, rows: Tensor) -> None:
        """Fit the set-up to the training rows: the activation-norm scale (when asked) and the decoder bias
        at the rows' mean (a start at the data's centre; SAELens's runner has no such init any more)."""
        import torch

        with torch.no_grad():
            if self.sae.cfg.normalize_activations == "expected_average_only_in":
                # SAELens's own estimate (sqrt(d_in) / mean norm), computed exactly over every row
                norm = float(rows.float().norm(dim=-1).mean())
                self.trainer.activation_scaler.scaling_factor = self.sae.cfg.d_in**0.5 / max(norm, 1e-12)
            self.sae.b_dec.copy_(self.trainer.activation_scaler(rows.float().mean(0)).to(self.sae.b_dec.device))

    def step(self, batch: Tensor) -> None:
        """One optimiser step on `batch` [batch_size, d_in] (raw activations: the trainer scales them)."""
        t = self.trainer
        t.maybe_reset_sparsity()
        out = t.step(batch)
        t.n_training_steps += 1
        self._last = (t.n_training_steps, out)
        if t.n_training_steps % self.every == 0 or t.n_training_steps == self.steps:
            self._record(t.n_training_steps, out)

    def finish(self) -> TrainingSAE[Any]:
        """What `SAETrainer.fit()` does after its loop: fold the norm scaling into the weights and write the
        final L0 and dead-feature count into the SAE's metadata; also log the last step if it was not."""
        t = self.trainer
        if self._last is not None and (not self.log or self.log[-1].step != self._last[0]):
            self._record(*self._last)
        if t.activation_scaler.scaling_factor is not None:
            self.sae.fold_activation_norm_scaling_factor(t.activation_scaler.scaling_factor)
            t.activation_scaler.scaling_factor = None
        t.set_final_sae_metadata()
        self.sae.eval()
        return self.sae

    def log_feature_sparsity(self) -> Tensor:
        """log10 of each feature's firing rate over training (what SAELens saves as sparsity.safetensors)."""
        return self.trainer.log_feature_sparsity

    def _record(self, step: int, out: TrainStepOutput) -> None:
        d = self.trainer.build_train_step_log_dict(output=out, n_training_samples=self.trainer.n_training_samples)
        self.log.append(
            SaeTrainLog(
                step=step,
                loss=round(float(d["losses/overall_loss"]), 6),
                mse_loss=round(float(d["losses/mse_loss"]), 6),
                explained_variance=round(float(d["metrics/explained_variance"]), 4),
                l0=round(float(d["metrics/l0"]), 3),
                dead_features=int(d["sparsity/dead_features"]),
                lr=float(d["details/current_learning_rate"]),
            )
        )


def _training_sae(inp: SaeTrainInput, d_in: int, d_sae: int, device: str) -> TrainingSAE[Any]:
    """SAELens's training SAE for the input's architecture."""
    norm = "expected_average_only_in" if inp.normalize else "none"
    if inp.architecture == "topk":
        from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

        return TopKTrainingSAE(
            TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=inp.k, device=device, normalize_activations=norm)
        )
    if inp.architecture == "batchtopk":
        from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig

        return BatchTopKTrainingSAE(
            BatchTopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=inp.k, device=device, normalize_activations=norm)
        )
    from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig

    return JumpReLUTrainingSAE(
        JumpReLUTrainingSAEConfig(
            d_in=d_in,
            d_sae=d_sae,
            l0_coefficient=inp.l0_coefficient,
            device=device,
            normalize_activations=norm,
        )
    )


def row_batches(rows: Tensor, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Batches of `rows` in shuffled passes (each row once per pass; `gen` decides the order), endless."""
    import torch

    while True:
        order = torch.randperm(len(rows), generator=gen).to(rows.device)
        for i in range(0, len(rows) - batch_size + 1, batch_size):
            yield rows[order[i : i + batch_size]]
        if len(rows) < batch_size:  # fewer rows than a batch: draw with replacement
            yield rows[torch.randint(len(rows), (batch_size,), generator=gen).to(rows.device)]
