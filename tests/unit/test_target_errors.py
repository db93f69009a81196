import subprocess
import sys

import pytest

from agent.targets import load
from tools.errors import UserError


@pytest.mark.parametrize(
    "spec, says",
    [
        ("organism:", "empty organism name"),
        ("organism:backdor", "Built-in organisms: backdoor"),
        ("gguf:/nonexistent/model.gguf", "does not exist"),
        ("hf:/nonexistent", "not a transformers model folder"),
        ("gtp2-smal", "Accepted forms"),
    ],
)
def test_bad_model_specs_explain_the_accepted_forms(spec, says):
    with pytest.raises(UserError, match=says):
        load(spec, device="cpu")


def test_organism_dir_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(UserError, match="not a trained organism folder"):
        load(f"organism:{tmp_path}", device="cpu")


@pytest.mark.parametrize(
    "value, says", [("gpu", "use cpu, cuda, cuda:N or auto"), ("cuda", "torch sees no CUDA device")]
)
def test_a_device_torch_cannot_use_is_named(monkeypatch, value, says):
    import torch

    from tools.target import resolve_device

    if value == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(UserError, match=f"^--device .*{says}"):
        resolve_device(value)
    monkeypatch.setenv("INTERP_DEVICE", value)
    with pytest.raises(UserError, match=f"^INTERP_DEVICE .*{says}"):
        resolve_device(None)
    monkeypatch.setenv("INTERP_DEVICE", "cpu")
    assert resolve_device(None) == "cpu" and resolve_device("cpu") == "cpu"


def test_cli_import_stays_light():
    """`interp --help` must not import torch, transformer_lens, chromadb or anthropic."""
    code = (
        "import sys, agent.cli; heavy = [m for m in ('torch', 'transformer_lens', 'chromadb', "
        "'anthropic', 'transformers') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
