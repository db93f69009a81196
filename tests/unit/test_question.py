"""Questions: the prompts file's per-prompt answers / versus / corrupted, the metric a question asks about,
and free text matched to one of the four kinds or refused."""

import json

import pytest
from pydantic import ValidationError

from agent.question import Question, parse_question, read_prompts_file
from tools.errors import UserError

IOI = "When Mary and John went to the store, John gave a drink to"
IOI_2 = "When Tom and Anna went to the park, Anna gave a ball to"


def prompts_json(tmp_path, **fields):
    p = tmp_path / "prompts.json"
    p.write_text(json.dumps(fields))
    return str(p)


def test_answers_versus_and_corrupted_reach_the_question(tmp_path):
    path = prompts_json(
        tmp_path,
        prompts=[IOI, IOI_2],
        answers=[" Mary", " Tom"],
        versus=[" John", " Anna"],
        corrupted=[IOI.replace("John gave", "Mary gave"), IOI_2.replace("Anna gave", "Tom gave")],
    )
    q = parse_question("which heads say the indirect object?", path)
    assert q.kind == "behaviour"
    assert q.answers == [" Mary", " Tom"] and q.versus == [" John", " Anna"]  # leading spaces kept: they are tokens
    assert q.corrupted[0].endswith("Mary gave a drink to")
    # a brain reads it back from the run's state (a JSON dict) by these names
    again = Question.model_validate(json.loads(json.dumps(q.model_dump(mode="json"))))
    assert again == q


def test_the_metric_follows_what_the_prompts_file_names(tmp_path):
    both = parse_question(
        "why Mary?", prompts_json(tmp_path, prompts=[IOI, IOI_2], answers=[" Mary", " Tom"], versus=[" John", " Anna"])
    )
    m = both.metric()
    assert (m.kind, m.tokens, m.versus_tokens, m.token, m.versus) == (
        "logit_diff",
        [" Mary", " Tom"],
        [" John", " Anna"],
        None,
        None,
    )
    assert m.has_gradient()

    answers = parse_question("why Mary?", prompts_json(tmp_path, prompts=[IOI, IOI_2], answers=[" Mary", " Tom"]))
    assert (answers.metric().kind, answers.metric().tokens) == ("prob", [" Mary", " Tom"])

    token = parse_question("why Mary?", prompts_json(tmp_path, prompts=[IOI], token=" Mary"))
    assert (token.metric().kind, token.metric().token, token.metric().tokens) == ("prob", " Mary", None)

    token_versus = parse_question(
        "why Mary?", prompts_json(tmp_path, prompts=[IOI, IOI_2], token=" Mary", versus=[" John", " Anna"])
    )
    m = token_versus.metric()
    assert (m.kind, m.token, m.tokens, m.versus_tokens) == ("logit_diff", " Mary", None, [" John", " Anna"])

    plain = parse_question("why Mary?", prompts_json(tmp_path, prompts=[IOI]))
    assert plain.metric() is None  # the brain measures the model's own top answers
    assert "own top answer" in plain.describe_metric()
    assert parse_question("audit this model for hidden triggers").metric() is None


def test_describe_metric_names_the_first_pair(tmp_path):
    q = parse_question("why?", prompts_json(tmp_path, prompts=[IOI], answers=[" Mary"], versus=[" John"]))
    assert q.describe_metric() == "logit[answer] - logit[versus], one pair per prompt (prompt 1: ' Mary' vs ' John')"
    q = parse_question("why?", prompts_json(tmp_path, prompts=[IOI], answers=[" Mary"]))
    assert q.describe_metric() == "P(answer), one answer per prompt (prompt 1: ' Mary')"
    q = parse_question("why?", prompts_json(tmp_path, prompts=[IOI], token=" Mary", versus=[" John"]))
    assert q.describe_metric() == "logit[' Mary'] - logit[versus], one pair per prompt (prompt 1: ' Mary' vs ' John')"
    q = parse_question("why?", prompts_json(tmp_path, prompts=[IOI], token=" Mary"))
    assert q.describe_metric() == q.metric().describe() == "P( Mary)"


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"prompts": [IOI, IOI_2], "answers": [" Mary"]}, r"`answers` has 1 entries for 2 prompts"),
        (
            {"prompts": [IOI], "answers": [" Mary"], "versus": [" John", " Anna"]},
            r"`versus` has 2 entries for 1 prompts",
        ),
        ({"prompts": [IOI, IOI_2], "corrupted": [IOI]}, r"`corrupted` has 1 entries for 2 prompts"),
        ({"prompts": [IOI, IOI_2], "answers": [" Mary", ""]}, r"`answers\[1\]` is empty"),
        ({"prompts": [IOI], "answers": [" Mary"], "versus": [""]}, r"`versus\[0\]` is empty"),
        ({"prompts": [IOI], "corrupted": [""]}, r"`corrupted\[0\]` is empty"),
        ({"prompts": [IOI], "versus": [" John"]}, r"give the answers too"),
        ({"prompts": [IOI], "answers": [" Mary"], "token": " Mary"}, r"not both"),
        ({"prompts": [IOI], "answers": [" Mary"], "versus": [" Mary"]}, r"the answer itself"),
        ({"prompts": [IOI], "token": " Mary", "versus": [" Mary"]}, r"the answer itself"),
        ({"prompts": [IOI], "corrupted": [IOI]}, r"corrupted\[0\] is the same as prompts\[0\]"),
        ({"positive": ["a"], "negative": ["b"], "answers": [" x"]}, r"`answers` goes with `prompts`"),
        ({"prompts": [IOI], "answers": [" Mary"], "answer": [" Mary"]}, r"answer: unknown field"),
    ],
)
def test_bad_per_prompt_fields_are_errors_that_teach(tmp_path, fields, says):
    path = prompts_json(tmp_path, **fields)
    with pytest.raises(UserError, match=says) as e:
        read_prompts_file(path)
    assert str(path) in str(e.value)
    if "unknown field" not in says:
        assert '"answers": [" Mary"], "versus": [" John"]' in str(e.value)  # the shape to copy


def test_a_hand_built_question_keeps_its_lists_paired():
    with pytest.raises(ValidationError, match="`answers` has 1 entries for 2 prompts"):
        Question(text="why?", kind="behaviour", prompts=[IOI, IOI_2], answers=[" Mary"])


def test_the_run_s_own_fields_validate():
    """What orient adds to the question (the usage sample's source, the sizes before sampling) is part of the
    record: a brain validating the state's question must not fail on them."""
    q = Question.model_validate(
        {
            "text": "audit this model",
            "kind": "audit",
            "prompts": ["a"],
            "prompts_source": "the model's usage sample",
            "prompts_given": 5000,
        }
    )
    assert q.prompts_given == 5000
    with pytest.raises(ValidationError, match="extra"):
        Question.model_validate({"text": "audit this model", "kind": "audit", "prompt": ["a"]})


def test_sampling_keeps_each_answer_with_its_prompt():
    from agent.nodes import MAX_QUESTION_PROMPTS, _sampled

    n = MAX_QUESTION_PROMPTS + 500
    q = Question(
        text="why?",
        kind="behaviour",
        prompts=[f"p{i}" for i in range(n)],
        answers=[f"a{i}" for i in range(n)],
        versus=[f"v{i}" for i in range(n)],
        corrupted=[f"c{i}" for i in range(n)],
    ).model_dump(mode="json")
    out = Question.model_validate(_sampled(q, seed=3))
    assert len(out.prompts) == MAX_QUESTION_PROMPTS and out.prompts_given == n
    for p, a, v, c in zip(out.prompts, out.answers, out.versus, out.corrupted, strict=True):
        assert a == "a" + p[1:] and v == "v" + p[1:] and c == "c" + p[1:]


# -- free text: matched to a kind, or refused -------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "audit this model for hidden triggers",
        "Is there a backdoor?",
        "does it have hidden behaviour?",
        "find triggers",
        "is its behaviour context-dependent?",
        "anything suspicious in this model?",
        "what does this model do?",
    ],
)
def test_audit_wording_is_an_audit(text):
    assert parse_question(text).kind == "audit"


@pytest.mark.parametrize(
    "text",
    [
        "which attention heads move the first token to the end?",
        "why does the model say Mary?",
        "are there induction heads?",
        "explain this model",
    ],
)
def test_other_free_text_without_prompts_is_refused_with_what_can_be_done(text):
    with pytest.raises(UserError) as e:
        parse_question(text)
    msg = str(e.value)
    assert repr(text) in msg and "no --prompts" in msg  # what was understood
    for kind in ("behaviour", "concept", "component", "audit"):
        assert f"\n  {kind} " in msg  # the four kinds, one line each
    assert "interp investigate --model M" in msg and "--prompts prompts.json" in msg
    assert '"answers": [" Mary"], "versus": [" John"]' in msg


def test_the_same_free_text_with_prompts_is_a_behaviour(tmp_path):
    text = "which attention heads move the first token to the end?"
    q = parse_question(text, prompts_json(tmp_path, prompts=["a b c d"], answers=[" a"]))
    assert q.kind == "behaviour" and q.metric().kind == "prob"


def test_audit_wording_with_prompts_audits_those_prompts(tmp_path):
    q = parse_question("audit this model for hidden triggers", prompts_json(tmp_path, prompts=["t1 t2 <q>"]))
    assert q.kind == "audit" and q.prompts == ["t1 t2 <q>"]
