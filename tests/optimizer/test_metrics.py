"""Task metrics are pure functions: checked against hand-computed values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from optimizer.errors import DataError, EvaluationError
from optimizer.measure.metrics import (
    MetricInput,
    ctc_exact_match,
    ctc_greedy_decode,
    get_metric,
    mean_pooled_embeddings,
    metric_names,
    spearman,
    spearman_pairs,
    top1_accuracy,
    top1_agreement,
)


def _m(outputs: list[np.ndarray], labels: np.ndarray | None = None, **kw: object) -> MetricInput:
    return MetricInput(
        outputs=outputs,
        labels=labels,
        meta=kw.pop("meta", {}),  # type: ignore[arg-type]
        inputs=kw.pop("inputs", {}),  # type: ignore[arg-type]
        reference_outputs=kw.pop("reference_outputs", None),  # type: ignore[arg-type]
    )


def test_metric_names_lists_builtin_metrics() -> None:
    assert {"top1", "agreement", "ctc_exact_match", "spearman_pairs"} <= set(metric_names())
    assert get_metric("top1").needs_labels and not get_metric("top1").needs_reference
    assert get_metric("agreement").needs_reference and not get_metric("agreement").needs_labels


def test_get_metric_raises_data_invalid_when_unknown() -> None:
    with pytest.raises(DataError) as exc:
        get_metric("bleu")
    assert exc.value.code == "data_invalid"
    assert "top1" in exc.value.hint


def test_top1_accuracy_counts_argmax_matches() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 5.0, 0.0]], np.float32)
    labels = np.array([1, 0, 1, 0])

    assert top1_accuracy(_m([logits], labels)) == 0.5


def test_top1_accuracy_flattens_extra_axes_and_thresholds_1d_outputs() -> None:
    logits = np.zeros((2, 2, 2), np.float32)
    logits[0, 1, 1] = 1.0  # flat class 3
    logits[1, 0, 0] = 1.0  # flat class 0
    assert top1_accuracy(_m([logits], np.array([3, 0]))) == 1.0
    assert top1_accuracy(_m([np.array([0.5, -0.5, 2.0])], np.array([1, 0, 0]))) == pytest.approx(2 / 3)


def test_top1_accuracy_raises_when_label_count_differs() -> None:
    with pytest.raises(DataError, match="2 labels for 3 samples"):
        top1_accuracy(_m([np.eye(3)], np.array([0, 1])))


def test_top1_agreement_compares_with_reference_argmax() -> None:
    out = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    ref = np.array([[9.0, 0.0], [0.0, 9.0], [0.0, 9.0], [9.0, 0.0]])

    assert top1_agreement(_m([out], reference_outputs=[ref])) == 0.5
    assert top1_agreement(_m([out], reference_outputs=[out])) == 1.0


def test_top1_agreement_raises_evaluation_failed_without_reference() -> None:
    with pytest.raises(EvaluationError) as exc:
        top1_agreement(_m([np.eye(2)]))
    assert exc.value.code == "evaluation_failed"


def _one_hot(seq: list[int], classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[seq]


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks() -> None:
    charset = ["_", "a", "b", "c"]
    logits = np.stack(
        [
            _one_hot([1, 1, 0, 1, 2, 2, 0, 0], 4),  # a a _ a b b _ _ -> "aab"
            _one_hot([0, 0, 0, 0, 0, 0, 0, 0], 4),  # only blanks -> ""
            _one_hot([3, 3, 3, 2, 1, 0, 1, 1], 4),  # c c c b a _ a a -> "cbaa"
        ]
    )

    assert ctc_greedy_decode(logits, charset) == ["aab", "", "cbaa"]


def test_ctc_greedy_decode_honours_blank_index() -> None:
    logits = _one_hot([0, 0, 2, 1, 1, 2, 0], 3)[None]
    assert ctc_greedy_decode(logits, ["x", "y", "#"], blank=2) == ["xyx"]


def test_ctc_exact_match_scores_whole_lines() -> None:
    charset = np.array(["_", "a", "b"])
    logits = np.stack([_one_hot([1, 0, 1, 2], 3), _one_hot([2, 2, 0, 1], 3)])

    score = ctc_exact_match(_m([logits], np.array(["aab", "bb"]), meta={"charset": charset}))

    assert score == 0.5  # decodes to "aab" and "ba"


def test_ctc_exact_match_raises_data_invalid_without_charset() -> None:
    with pytest.raises(DataError, match="charset"):
        ctc_exact_match(_m([np.zeros((1, 2, 3))], np.array(["a"])))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
        ([1, 1, 2, 2, 3, 3, 3], [3, 1, 2, 2, 5, 4, 4]),  # ties on both sides
        ([0.3, -1.2, 0.3, 7.0, 2.2, 2.2], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ([4, 3, 2, 1], [1, 2, 3, 4]),
    ],
)
def test_spearman_matches_scipy(a: list[float], b: list[float]) -> None:
    expected = stats.spearmanr(a, b).statistic
    assert spearman(np.array(a), np.array(b)) == pytest.approx(expected, abs=1e-12)


def test_spearman_matches_scipy_on_random_data_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 200).astype(np.float64)
    b = a + rng.integers(0, 3, 200)

    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_returns_zero_for_constant_input() -> None:
    assert spearman(np.ones(4), np.arange(4.0)) == 0.0


def test_mean_pooled_embeddings_ignores_masked_tokens() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])  # [1, 3 tokens, 2]
    mask = np.array([[1, 1, 0]])

    emb = mean_pooled_embeddings(hidden, mask)

    np.testing.assert_allclose(emb, [[1.0, 0.0]])  # mean (2, 0), normalised
    unmasked = mean_pooled_embeddings(hidden, None)
    np.testing.assert_allclose(unmasked, [[104 / np.hypot(104, 100), 100 / np.hypot(104, 100)]])


def test_mean_pooled_embeddings_normalises_2d_outputs() -> None:
    emb = mean_pooled_embeddings(np.array([[3.0, 4.0], [0.0, 0.0]]), None)
    np.testing.assert_allclose(emb, [[0.6, 0.8], [0.0, 0.0]])


def _pairs_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((8, 5, 4))
    mask = np.ones((8, 5), np.int64)
    mask[:, 3:] = 0
    pairs = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [0, 7], [1, 6]])
    scores = np.array([0.1, 0.5, 0.2, 0.9, 0.4, 0.3])
    return hidden, mask, pairs, scores


def _cosines(hidden: np.ndarray, mask: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray((pooled[pairs[:, 0]] * pooled[pairs[:, 1]]).sum(1))


def test_spearman_pairs_correlates_cosine_with_scores() -> None:
    hidden, mask, pairs, scores = _pairs_case()
    cos = _cosines(hidden, mask, pairs)

    got = spearman_pairs(_m([hidden], scores, meta={"pair_index": pairs}, inputs={"attention_mask": mask}))

    assert got == pytest.approx(stats.spearmanr(cos, scores).statistic, abs=1e-12)


def test_spearman_pairs_averages_over_groups() -> None:
    hidden, mask, pairs, scores = _pairs_case()
    groups = np.array([0, 0, 0, 1, 1, 1])
    cos = _cosines(hidden, mask, pairs)
    expected = np.mean([stats.spearmanr(cos[groups == g], scores[groups == g]).statistic for g in (0, 1)])

    got = spearman_pairs(
        _m(
            [hidden],
            scores,
            meta={"pair_index": pairs, "pair_group": groups},
            inputs={"attention_mask": mask},
        )
    )

    assert got == pytest.approx(expected, abs=1e-12)
    assert got != pytest.approx(stats.spearmanr(cos, scores).statistic)


def test_spearman_pairs_raises_data_invalid_without_pair_index() -> None:
    with pytest.raises(DataError, match="pair_index"):
        spearman_pairs(_m([np.zeros((2, 3))], np.array([0.5])))


# --------------------------------------------------------------------------- baselines nothing can be compared with


def test_top1_refuses_labels_outside_the_output_classes() -> None:
    logits = np.eye(3, dtype=np.float32)

    with pytest.raises(DataError, match="names a class the model does not have"):
        top1_accuracy(_m([logits], np.array([0, 1, 2**63 - 1])))


def test_check_baseline_refuses_a_score_at_the_metric_floor() -> None:
    from optimizer.measure.metrics import check_baseline

    logits = np.eye(3, dtype=np.float32)
    with pytest.raises(DataError, match="learned nothing") as e:
        check_baseline("top1", 0.0, _m([logits], np.array([1, 2, 0])))
    assert e.value.details["baseline"] == 0.0
    with pytest.raises(DataError, match="learned nothing"):
        check_baseline("ctc_exact_match", 0.0, _m([logits]))
    with pytest.raises(DataError, match="cannot be measured"):
        check_baseline("spearman_pairs", float("nan"), _m([logits]))


def test_check_baseline_refuses_top1_at_chance_level() -> None:
    from optimizer.measure.metrics import chance_ceiling, check_baseline

    # 10 classes, 100 samples: guessing reaches 0.1 + 3 * sqrt(0.09 / 100) = 0.19
    assert chance_ceiling(10, 100) == pytest.approx(0.19)
    logits = np.zeros((100, 10), np.float32)
    with pytest.raises(DataError, match=r"chance level for 10 classes over 100 samples") as e:
        check_baseline("top1", 0.15, _m([logits]))
    assert e.value.details["chance_ceiling"] == pytest.approx(0.19)


def test_check_baseline_accepts_a_hard_task_that_is_low_but_above_chance() -> None:
    from optimizer.measure.metrics import check_baseline

    # 5% top-1 over 1000 classes and 1000 samples is 50 times chance: a real model on a hard task
    check_baseline("top1", 0.05, _m([np.zeros((1000, 1000), np.float32)]))
    # 20% on 10 classes over 1000 samples: above guessing's 0.128
    check_baseline("top1", 0.20, _m([np.zeros((1000, 10), np.float32)]))
    # agreement has no floor: the original agrees with itself
    check_baseline("agreement", 1.0, _m([np.zeros((4, 3), np.float32)]))


# --------------------------------------------------------------------------- issue 12: metrics of real tasks


def test_choose_fidelity_follows_the_kind_of_output() -> None:
    from optimizer.measure.metrics import choose_fidelity

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((8, 10)).astype(np.float32)
    emb = logits / np.linalg.norm(logits, axis=1, keepdims=True)
    ctc = rng.random((4, 40, 300)).astype(np.float32)
    ctc /= ctc.sum(-1, keepdims=True)
    yolo = rng.random((1, 84, 2100)).astype(np.float32)
    probability_map = rng.random((2, 1, 32, 32)).astype(np.float32)
    assert choose_fidelity(logits, "logits")[0] == "agreement"
    assert choose_fidelity(emb, "output")[0] == "cosine"  # unit-norm rows: an embedding
    assert choose_fidelity(logits, "sentence_embedding")[0] == "cosine"  # named like one
    assert (
        choose_fidelity(rng.standard_normal((2, 64, 384)).astype(np.float32), "last_hidden_state")[0]
        == "cosine"
    )
    assert choose_fidelity(ctc, "softmax_out")[0] == "sequence_agreement"
    assert choose_fidelity(yolo, "output0")[0] == "box_agreement"
    ctc_logits = rng.standard_normal((2, 22, 820)).astype(np.float32)  # a head's proportions, but signed
    assert choose_fidelity(ctc_logits, "387")[0] == "cosine"
    assert choose_fidelity(probability_map, "sigmoid_0")[0] == "cosine"
    assert choose_fidelity(rng.random((8, 1)).astype(np.float32), "prob")[0] == "decision_agreement"
    _, why = choose_fidelity(emb, "output")
    assert "argmax" in why


def test_cosine_fidelity_is_one_for_the_same_output_and_lower_for_noise() -> None:
    from optimizer.measure.metrics import cosine_fidelity

    ref = np.random.default_rng(1).standard_normal((6, 16))
    assert cosine_fidelity(_m([ref], reference_outputs=[ref])) == pytest.approx(1.0)
    noisy = ref + np.random.default_rng(2).standard_normal(ref.shape)
    assert 0.0 < cosine_fidelity(_m([noisy], reference_outputs=[ref])) < 0.95


def test_sequence_agreement_compares_decoded_ctc_sequences_not_frames() -> None:
    from optimizer.measure.metrics import sequence_agreement

    def onehot(ids: list[int]) -> np.ndarray:
        return np.eye(5)[ids][None]

    ref = onehot([0, 1, 1, 0, 2, 2])
    same_text = onehot([1, 1, 0, 0, 2, 0])  # other frames, same sequence "1 2"
    other = onehot([0, 1, 0, 3, 2, 0])
    assert sequence_agreement(_m([same_text], reference_outputs=[ref])) == 1.0
    assert sequence_agreement(_m([other], reference_outputs=[ref])) == 0.0


def test_box_agreement_matches_boxes_of_a_yolo_head() -> None:
    from optimizer.measure.metrics import box_agreement

    head = np.zeros((1, 6, 50), np.float32)  # 4 box values + 2 classes, 50 anchors
    head[0, :4, 3] = [10, 10, 4, 4]
    head[0, 4, 3] = 0.9
    head[0, :4, 7] = [30, 30, 6, 6]
    head[0, 5, 7] = 0.8
    assert box_agreement(_m([head], reference_outputs=[head])) == 1.0
    moved = head.copy()
    moved[0, :2, 7] = [40, 40]  # the second box moved away
    assert box_agreement(_m([moved], reference_outputs=[head])) == pytest.approx(0.5)


def test_ctc_exact_match_normalises_whitespace() -> None:
    charset = ["blank", "a", "b", " "]
    # decodes " ab" (a padded line), the label is "ab"
    logits = np.eye(4)[[3, 0, 1, 2]][None]
    m = _m([logits], labels=np.asarray(["ab"]), meta={"charset": np.asarray(charset)})
    assert ctc_exact_match(m) == 1.0


def test_error_rate_metrics_are_lower_is_better_and_the_drop_is_their_increase() -> None:
    from optimizer.measure.metrics import ctc_cer, drop_points

    charset = ["blank", "a", "b", "c"]
    logits = np.eye(4)[[1, 0, 2, 0, 3]][None]  # "abc"
    m = _m([logits], labels=np.asarray(["abd"]), meta={"charset": np.asarray(charset)})
    assert ctc_cer(m) == pytest.approx(1 / 3)
    spec = get_metric("ctc_cer")
    assert spec.higher_is_better is False
    assert drop_points(spec, 0.10, 0.15) == pytest.approx(5.0)  # 5 more points of errors: worse
    assert drop_points(get_metric("top1"), 0.90, 0.85) == pytest.approx(5.0)
    pct = get_metric("top1").__class__(
        name="pct",
        fn=lambda m: 0.0,
        needs_labels=True,
        needs_reference=False,
        description="",
        higher_is_better=True,
        scale=100.0,
    )
    assert drop_points(pct, 90.0, 85.0) == pytest.approx(5.0)


def test_get_metric_imports_a_users_metric_from_a_file(tmp_path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "import numpy as np\n"
        "def error_rate(m):\n"
        "    '''share of wrong top-1 predictions'''\n"
        "    return float((m.outputs[0].argmax(1) != m.labels).mean())\n"
        "error_rate.higher_is_better = False\n"
        "error_rate.needs_labels = True\n"
    )
    spec = get_metric(f"{path}:error_rate")
    assert spec.higher_is_better is False and spec.needs_labels
    assert spec.fn(_m([np.eye(3)], labels=np.asarray([0, 1, 0]))) == pytest.approx(1 / 3)
    with pytest.raises(DataError):
        get_metric(f"{tmp_path / 'missing.py'}:f")


def test_top1_accuracy_thresholds_one_probability_per_sample_at_one_half() -> None:
    probs = np.array([[0.9], [0.2], [0.6], [0.4]], np.float32)  # [N, 1], as a sigmoid head gives

    assert top1_accuracy(_m([probs], np.array([1, 0, 1, 0]))) == 1.0
    assert top1_accuracy(_m([probs], np.array([1, 1, 1, 1]))) == 0.5
    logits = np.array([[2.0], [-1.0], [0.3], [-0.2]], np.float32)  # not all in [0, 1]: split at 0
    assert top1_accuracy(_m([logits], np.array([1, 0, 1, 0]))) == 1.0


def test_top1_agreement_splits_single_scores_where_the_original_does() -> None:
    ref = np.array([[0.9], [0.1]], np.float32)
    out = np.array([[0.4], [-0.01]], np.float32)  # a quantized probability straying below 0

    assert top1_agreement(_m([out], reference_outputs=[ref])) == 0.5
    assert top1_agreement(_m([ref], reference_outputs=[ref])) == 1.0
