"""Same spec and seed, same weights: across processes, thread settings and hash seeds, on the CPU."""

import hashlib

import pytest

from experiments.organisms.reproducible import train_again
from experiments.organisms.spec import parse_spec
from experiments.organisms.train import TRAIN_THREADS, _train, deterministic_cpu, train
from tests.conftest import TINY_LOOKUP

# d_model 64: the smallest width tried at which the caller's thread count changed the weights (at 32,
# 1, 2 and 4 threads gave the same weights even before training fixed its settings).
WIDE = dict(
    TINY_LOOKUP,
    name="tiny-wide",
    model={"n_layers": 2, "d_model": 64, "n_heads": 2, "d_mlp": 128},
    train={"steps": 60, "batch_size": 64, "lr": 0.003, "warmup_steps": 20, "eval_examples": 100},
)


# five trainings in subprocesses
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spec():
    return parse_spec(WIDE, "tiny-wide")


def _digest(model) -> str:
    from safetensors.torch import save

    return hashlib.sha256(save({k: v.contiguous() for k, v in model.state_dict().items()})).hexdigest()


def test_without_the_fix_the_thread_count_changes_this_specs_weights(spec):
    """The control that lets the next test fail: trained under the caller's settings (no fixed thread count,
    deterministic algorithms off, as before), 1 and 3 threads give different weights."""
    import torch

    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    digests = []
    try:
        torch.use_deterministic_algorithms(False)
        for threads in (1, 3):
            torch.set_num_threads(threads)
            with torch.random.fork_rng(devices=[]):
                digests.append(_digest(_train(spec, None).model))
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])
    assert digests[0] != digests[1]


def test_two_processes_with_other_thread_settings_train_the_same_weights(spec, tmp_path):
    import torch

    a = train_again(spec, tmp_path / "a", threads=1)  # OMP/MKL_NUM_THREADS=1, set_num_threads(1), hash seed 2
    b = train_again(spec, tmp_path / "b", threads=3)  # 3, 3, hash seed 4
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        here = train(spec)
    finally:
        torch.set_num_threads(before)
    from experiments.organisms.tasks import vocab_names
    from tools.checkpoint import save_checkpoint, weights_hash, word_level_tokenizer

    tokenizer = word_level_tokenizer(vocab_names(here.config["d_vocab"] - 4))
    save_checkpoint(here.model, here.config, tokenizer, tmp_path / "c")
    assert len(a) == 16 and a == b == weights_hash(tmp_path / "c")


def test_training_settings_come_back_afterwards_even_on_an_error():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    torch.manual_seed(123)
    stream = torch.random.get_rng_state()
    try:
        with pytest.raises(RuntimeError, match="boom"), deterministic_cpu():
            assert torch.get_num_threads() == TRAIN_THREADS and torch.are_deterministic_algorithms_enabled()
            torch.manual_seed(0)
            torch.rand(5)
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 3 and not torch.are_deterministic_algorithms_enabled()
        assert torch.equal(torch.random.get_rng_state(), stream)  # the caller's random stream is untouched
    finally:
        torch.set_num_threads(before)
