"""The induction line's causal-path arithmetic on hand-built numbers: the corrupted reference, which heads
stand out, and where a head attends relative to the earlier copy."""

from __future__ import annotations

import numpy as np

from agent.brains.lines import copy_offsets as co


def test_corrupting_the_second_copy_keeps_the_first_and_the_length_and_leaves_nothing_to_copy() -> None:
    prompt = "a b c d a b c"
    vocab = [*"abcdefghij"]
    bad = co.corrupt_second_copy(prompt, 4, vocab, np.random.default_rng(0))
    assert bad is not None
    words = bad.split(" ")
    assert words[:4] == ["a", "b", "c", "d"] and len(words) == 7
    assert not set(words[4:]) & set("abcd") and len(set(words[4:])) == 3


def test_corrupting_needs_enough_unused_words() -> None:
    assert co.corrupt_second_copy("a b c a b c", 3, ["a", "b", "c", "d"], np.random.default_rng(0)) is None


def test_standouts_name_the_heads_carrying_a_share_of_the_total_largest_first() -> None:
    # Layer 1 carries copying; one weak layer-1 head (0.3) is below a tenth of the total (5.0).
    grid = [[-0.01, 0.0, -0.02, 0.01], [-0.9, -0.3, -0.6, -0.02], [0.0, -0.01, 0.0, 0.0]]
    got = co.standouts(grid, total=5.0, share=0.1, most=6)
    assert [(s.layer, s.head) for s in got] == [(1, 0), (1, 2)]
    assert got[0].drop == 0.9


def test_standouts_keep_every_carrying_head_even_when_half_the_model_carries_it() -> None:
    # a two-layer, four-head model whose whole second layer copies: the median head is a carrying one
    grid = [[-0.02, -0.01, -0.02, -0.03], [-1.37, -1.0, -2.05, -1.38]]
    got = co.standouts(grid, total=6.0, share=0.1, most=6)
    assert [(s.layer, s.head) for s in got] == [(1, 2), (1, 3), (1, 0), (1, 1)]


def test_standouts_name_nothing_when_no_head_carries_a_share_or_nothing_changed() -> None:
    flat = [[-0.2, -0.21, -0.19], [-0.2, -0.2, -0.22]]
    assert co.standouts(flat, total=5.0, share=0.1, most=6) == []
    assert co.standouts([[-1.0, 0.0, 0.0]], total=0.0, share=0.1, most=6) == []
    assert co.standouts([[0.5, 0.9]], total=1.0, share=0.1, most=6) == []  # heads that raise copying are no carriers


def test_standouts_keep_at_most_the_asked_number() -> None:
    grid = [[-1.0, -0.9, -0.8, 0.0, 0.0, 0.0, 0.0, 0.0]]
    assert [s.head for s in co.standouts(grid, total=3.0, share=0.1, most=2)] == [0, 1]


def test_copy_positions_follow_the_latest_earlier_occurrence_with_a_bos_shift() -> None:
    # words: x a b c a b ; the second 'a' (word 4) copies 'b' after word 1; the second 'b' (word 5) copies 'c'.
    assert co.copy_positions(["x", "a", "b", "c", "a", "b"], shift=1) == [(5, 3), (6, 4)]
    assert co.copy_positions(["a", "a"], shift=0) == []  # adjacent: nothing before to copy from


def test_offset_profile_finds_a_head_two_tokens_past_the_textbook_position() -> None:
    words = ["a", "b", "c", "d", "e", "f", "a", "b", "c"]  # queries at words 6, 7, 8 copy from words 1, 2, 3
    pairs = co.copy_positions(words, shift=0)
    pat = np.zeros((9, 2, 9))
    for q, s in pairs:
        pat[q, 0, s] = 1.0  # head 0: textbook induction
        pat[q, 1, s + 2] = 0.8  # head 1: two tokens past it
        pat[q, 1, 0] = 0.2
    prof = co.offset_profile(pat, pairs) / len(pairs)
    assert co.peak(prof[0]).k == 0 and co.peak(prof[0]).share == 1.0
    k1 = co.peak(prof[1])
    assert (k1.k, k1.share) == (2, 0.8)
    assert "k=+2" in co.describe(k1)
    assert "textbook" in co.describe(co.peak(prof[0]))


def test_offset_profile_ignores_keys_after_the_query() -> None:
    pairs = [(3, 3)]  # the source is the query itself: k > 0 lies in the future
    pat = np.ones((4, 1, 6))
    prof = co.offset_profile(pat, pairs)
    assert prof[0, co.MAX_OFFSET + 1 :].sum() == 0
    assert prof[0, co.MAX_OFFSET] == 1.0


def test_lookback_profile_finds_a_previous_token_head_and_one_that_looks_three_back() -> None:
    n = 8
    pat = np.zeros((n, 2, n))
    for q in range(n):
        pat[q, 0, max(q - 1, 0)] = 1.0  # previous token (the first query attends to itself)
        pat[q, 1, max(q - 3, 0)] = 1.0
    prof = co.lookback_profile(pat) / n
    assert int(np.argmax(prof[0])) == 1 and int(np.argmax(prof[1])) == 3
    assert "previous token" in co.describe_lookback(prof[0])
    assert "3 back" in co.describe_lookback(prof[1])


def test_pattern_from_qk_is_a_causal_softmax() -> None:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((5, 2, 4)), rng.standard_normal((5, 2, 4))
    pat = co.pattern_from_qk(q, k, scale=2.0)
    assert pat.shape == (5, 2, 5)
    assert np.allclose(pat.sum(-1), 1.0) and np.all(np.triu(np.ones((5, 5)), 1)[:, None, :] * pat == 0)
    s = q[3, 1] @ k[:4, 1].T / 2.0
    assert np.allclose(pat[3, 1, :4], np.exp(s) / np.exp(s).sum())
