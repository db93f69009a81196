"""Check that an organism's weights are reproducible: train its spec again in a fresh process, with other
thread settings, and compare the weights with a trained copy, tensor by tensor.

    python -m experiments.organisms.reproducible SPEC_FILE OUT --threads N

is the child: it sets the thread count a caller would (torch.set_num_threads; OMP_NUM_THREADS and
MKL_NUM_THREADS come from the parent's environment for it), trains SPEC_FILE, writes the checkpoint
into OUT and prints its weights hash on the last line of stdout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from experiments.organisms.spec import OrganismSpec
from tools.errors import UserError


@dataclass
class TensorDifference:
    """One weight tensor that is not the same in both trainings."""

    name: str
    """State-dict key, e.g. blocks.0.attn.W_Q."""
    max_abs: float
    """Largest absolute difference between the two (inf when the shapes differ or one side lacks it)."""


@dataclass
class Reproduction:
    """A spec trained again in another process, compared with a trained copy."""

    expected: str
    """Weights hash of the trained copy (its manifest's, recomputed from its file)."""
    got: str
    """Weights hash of the fresh training."""
    threads: int
    """The thread count the fresh training's process was started with."""
    differences: list[TensorDifference] = field(default_factory=list)
    """Tensors that differ, largest difference first (empty when the hashes agree)."""

    @property
    def same(self) -> bool:
        return self.expected == self.got


def child_threads() -> int:
    """A thread count other than this process's, so the fresh training sees other settings than ours."""
    import torch

    return 1 if torch.get_num_threads() != 1 else 2


def train_again(spec: OrganismSpec, out: Path, threads: int) -> str:
    """Train `spec` in a new Python process whose caller-side thread settings are `threads` (and whose
    PYTHONHASHSEED differs from ours); its checkpoint goes to `out`. Returns its weights hash."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    spec_file = out / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONHASHSEED": str(threads + 1),
    }
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.organisms.reproducible",
            str(spec_file),
            str(out),
            "--threads",
            str(threads),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"training {spec.name!r} again in a fresh process failed (exit {done.returncode}): {tail}")
    return lines[-1].strip()


def differences(a: Path, b: Path) -> list[TensorDifference]:
    """Tensors of two checkpoints' weights that are not bit-identical, largest difference first."""
    import torch
    from safetensors.torch import load_file

    from tools.checkpoint import WEIGHTS_FILE

    left, right = load_file(str(a / WEIGHTS_FILE)), load_file(str(b / WEIGHTS_FILE))
    out = []
    for name in sorted(set(left) | set(right)):
        x, y = left.get(name), right.get(name)
        if x is None or y is None or x.shape != y.shape:
            out.append(TensorDifference(name, float("inf")))
        elif not torch.equal(x, y):
            out.append(TensorDifference(name, float((x.double() - y.double()).abs().max())))
    return sorted(out, key=lambda d: -d.max_abs)


def check_reproducible(spec: OrganismSpec, trained: Path, threads: int | None = None) -> Reproduction:
    """Train `spec` again in a fresh process with other thread settings and compare with the organism
    trained in `trained`."""
    from tools.checkpoint import weights_hash

    threads = child_threads() if threads is None else threads
    expected = weights_hash(trained)
    with tempfile.TemporaryDirectory(prefix="interp-reproduce-") as tmp:
        got = train_again(spec, Path(tmp) / "again", threads)
        diffs = [] if got == expected else differences(trained, Path(tmp) / "again")
    return Reproduction(expected, got, threads, diffs)


def _child(argv: list[str]) -> None:
    import argparse

    import torch

    from experiments.organisms.spec import load_spec
    from experiments.organisms.tasks import vocab_names
    from experiments.organisms.train import train
    from tools.checkpoint import save_checkpoint, weights_hash, word_level_tokenizer

    parser = argparse.ArgumentParser(prog="python -m experiments.organisms.reproducible")
    parser.add_argument("spec_file", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)  # what a caller may do; training must not depend on it
    spec = load_spec(args.spec_file)
    result = train(spec)
    save_checkpoint(
        result.model, result.config, word_level_tokenizer(vocab_names(result.config["d_vocab"] - 4)), args.out
    )
    print(weights_hash(args.out))


if __name__ == "__main__":
    _child(sys.argv[1:])
