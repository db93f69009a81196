"""The Neuronpedia export validates against the schema subset taken from Neuronpedia's repository."""

import json
from pathlib import Path

import jsonschema
import pytest

from agent.labeling.export import neuronpedia_document
from memory.records import FeatureLabel
from tools.errors import UserError

pytestmark = pytest.mark.unit

SCHEMA = json.loads((Path(__file__).parents[1] / "fixtures" / "neuronpedia" / "explanations.schema.json").read_text())


def validate(doc: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)


def sae_folder(tmp_path: Path, name: str, cfg: dict) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return str(folder)


def labels(sae_id: str, n: int = 3, model_id: str = "org-0a1b2c3d4e") -> list[FeatureLabel]:
    out = [
        FeatureLabel(
            model_id=model_id,
            sae_id=sae_id,
            hook="blocks.1.hook_resid_pre",
            feature=i,
            label=f"fires on t{i}",
            explainer="heuristic",
            judge="rule",
            scores={"detection": 0.9, "fuzzing": 0.8, "intervention": 0.5},
        )
        for i in range(n)
    ]
    return [
        *out,
        FeatureLabel(
            model_id=model_id, sae_id=sae_id, hook="blocks.1.hook_resid_pre", feature=n, error="explainer failed"
        ),
    ]


def test_export_with_source_id_validates_and_maps_scores(tmp_path):
    sae = sae_folder(tmp_path, "sae", {"metadata": {"hook_name": "blocks.1.hook_resid_pre"}})
    doc = neuronpedia_document(labels(sae), source_id="1-res-sae")
    validate(doc)
    assert next(u["feature"] for u in doc["uploads"]) == {
        "modelId": "org-0a1b2c3d4e",
        "layer": "1-res-sae",
        "index": 0,
        "explanation": "fires on t0",
        "explanationModel": "heuristic",
    }
    assert len(doc["uploads"]) == len(doc["explanations"]) == 3  # the error record is left out
    scores = doc["explanations"][0]["scores"]
    assert {s["explanationScoreTypeName"]: s["value"] for s in scores} == {"eleuther_recall": 0.9, "eleuther_fuzz": 0.8}
    assert all(s["explanationScoreModelName"] == "rule" for s in scores)
    assert any("'intervention' left out" in n for n in doc["notes"])


def test_source_and_model_default_from_saelens_neuronpedia_id(tmp_path):
    sae = sae_folder(tmp_path, "sae", {"neuronpedia_id": "gpt2-small/6-res-jb"})
    doc = neuronpedia_document(labels(sae, model_id="Not A Neuronpedia Id"))
    validate(doc)
    assert {(u["feature"]["modelId"], u["feature"]["layer"]) for u in doc["uploads"]} == {("gpt2-small", "6-res-jb")}


def test_no_source_id_anywhere_says_how_to_pass_one(tmp_path):
    sae = sae_folder(tmp_path, "sae", {"metadata": {"hook_name": "blocks.1.hook_resid_pre"}})
    with pytest.raises(UserError, match="--source-id LAYER-SET"):
        neuronpedia_document(labels(sae))


@pytest.mark.parametrize("bad", ["blocks.1.hook_resid_pre/sae", "1-Res", "res-1", "1-res--jb", "1-neurons", "1-res-"])
def test_bad_source_ids_are_refused_here_and_by_the_schema(tmp_path, bad):
    sae = sae_folder(tmp_path, "sae", {})
    with pytest.raises(UserError, match="not a Neuronpedia source id"):
        neuronpedia_document(labels(sae), source_id=bad)
    doc = neuronpedia_document(labels(sae), source_id="1-res")
    doc["uploads"][0]["feature"]["layer"] = bad  # the schema itself must reject what the check rejects
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


def test_schema_rejects_unknown_score_types_and_the_old_shape(tmp_path):
    sae = sae_folder(tmp_path, "sae", {})
    doc = neuronpedia_document(labels(sae), source_id="1-res")
    doc["explanations"][0]["scores"][0]["explanationScoreTypeName"] = "detection (rule)"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
    old = {"modelId": "org-0a1b2c3d4e", "layer": "blocks.1.hook_resid_pre/sae", "index": "0", "description": "x"}
    with pytest.raises(jsonschema.ValidationError):
        validate({**doc, "uploads": [{"feature": old}]})


def test_labels_of_two_saes_need_one_source_each(tmp_path):
    a = sae_folder(tmp_path, "a", {"neuronpedia_id": "gpt2-small/6-res-jb"})
    b = sae_folder(tmp_path, "b", {})
    with pytest.raises(UserError, match="--sae DIR"):
        neuronpedia_document(labels(a) + labels(b), source_id="1-res")
    with pytest.raises(UserError, match=f"SAE {b} has no neuronpedia_id"):
        neuronpedia_document(labels(a) + labels(b))


def test_a_model_id_neuronpedia_would_refuse_is_a_clear_error(tmp_path):
    sae = sae_folder(tmp_path, "sae", {})
    with pytest.raises(UserError, match="--neuronpedia-model"):
        neuronpedia_document(labels(sae, model_id="My_Model"), source_id="1-res")
    validate(neuronpedia_document(labels(sae, model_id="My_Model"), source_id="1-res", model="my-model"))


def test_a_saelens_release_sae_takes_its_source_from_the_registry():
    # SAELens ships its registry (pretrained_saes.yaml) with the package: no network
    doc = neuronpedia_document(labels("gpt2-small-res-jb/blocks.6.hook_resid_pre", model_id="gpt2"))
    validate(doc)
    feature = doc["uploads"][0]["feature"]
    assert (feature["modelId"], feature["layer"]) == ("gpt2-small", "6-res-jb")
