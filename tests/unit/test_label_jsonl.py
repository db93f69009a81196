"""The labels JSONL file a labeling job streams to: appended whole lines, read back by feature, a line cut
short by a kill dropped and cut off so the next append starts clean, a foreign file refused."""

import pytest

from agent.labeling.job import DEAD, append_labels, read_labels
from memory.records import FeatureLabel
from tools.errors import UserError

pytestmark = pytest.mark.unit


def _label(feature: int, sae: str = "sae", error: str | None = None) -> FeatureLabel:
    return FeatureLabel(
        model_id="m", sae_id=sae, hook="blocks.0.hook_resid_pre", feature=feature, explainer="heuristic",
        label="" if error else f"fires on t{feature}", error=error,
    )  # fmt: skip


def test_lines_read_back_by_feature_the_last_line_of_a_feature_wins(tmp_path):
    path = tmp_path / "labels" / "l.jsonl"
    append_labels(path, [_label(0, error="explanation failed: timeout"), _label(1), _label(2, error=DEAD)])
    append_labels(path, [_label(0), _label(3, sae="other")])
    got = read_labels(path, "m", "sae", "heuristic")
    assert sorted(got) == [0, 1, 2]  # feature 3 belongs to another SAE
    assert got[0].error is None and got[2].error == DEAD


def test_a_line_cut_short_by_a_kill_is_dropped_and_cut_off(tmp_path):
    path = tmp_path / "l.jsonl"
    append_labels(path, [_label(0), _label(1)])
    whole = path.read_bytes()
    path.write_bytes(whole + _label(2).model_dump_json().encode()[:40])  # killed mid-write
    assert sorted(read_labels(path, "m", "sae", "heuristic")) == [0, 1]
    assert path.read_bytes() == whole
    append_labels(path, [_label(2)])
    assert sorted(read_labels(path, "m", "sae", "heuristic")) == [0, 1, 2]


def test_a_file_that_is_not_a_labels_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(UserError, match="not a feature label"):
        read_labels(path, "m", "sae", "heuristic")


def test_a_second_job_on_one_labels_file_is_refused_and_the_file_is_kept(tmp_path):
    """Two jobs on one file would both label every feature and append it twice (measured: 63 lines for 32
    features); the second is refused before it reads anything."""
    from agent.labeling.job import HeuristicExplainer, label
    from agent.run_lock import ProcessLock

    path = tmp_path / "labels.jsonl"
    append_labels(path, [_label(0)])
    before = path.read_bytes()
    first = ProcessLock(path.with_name(path.name + ".lock"), "the first job", "")
    with first, pytest.raises(UserError, match=r"labels file .*labels.jsonl is in use by pid \d+; wait for"):
        label(None, "sae", [0, 1], ["a"] * 4, HeuristicExplainer(), out=path)  # type: ignore[arg-type]
    assert path.read_bytes() == before
