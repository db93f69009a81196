"""sae_train's SAELens schedule and architecture fields refuse bad values with a message naming the field."""

import pytest

from tools.errors import UserError
from tools.registry import validate

BASE = {"hook": "blocks.0.hook_resid_pre", "out": "sae"}


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("lr_decay", 2, "lr_decay: Input should be less than or equal to 1"),
        ("lr_warm_up", -1, "lr_warm_up: Input should be greater than or equal to 0"),
        ("architecture", "nope", "architecture: Input should be 'topk', 'batchtopk' or 'jumprelu'"),
        ("dead_feature_window", 0, "dead_feature_window: Input should be greater than or equal to 1"),
    ],
)
def test_a_bad_training_setting_is_a_clear_error(field, value, says):
    with pytest.raises(UserError, match=f"sae_train: invalid input\n  {says}"):
        validate("sae_train", {**BASE, field: value})


def test_the_defaults_validate():
    inp = validate("sae_train", BASE)
    assert inp.architecture == "topk" and 0 <= inp.lr_decay <= 1
