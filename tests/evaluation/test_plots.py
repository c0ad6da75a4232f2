"""Plots: PR points and AP against a brute-force reference and a hand-worked example; each plot writes a
valid PNG; the figures hold the right data; training-log parsing, metric selection and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sbert_siamese.errors import ConfigError, DataError
from sbert_siamese.evaluation import plots
from sbert_siamese.evaluation.pair_classification import best_threshold_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PIXELS = (round(plots.FIGSIZE[1] * plots.DPI), round(plots.FIGSIZE[0] * plots.DPI))  # (rows, columns)


def assert_png(path: Path) -> None:
    from matplotlib.image import imread

    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000  # axes, text and data, not a blank canvas
    image = imread(path)
    assert image.shape == (*PIXELS, 4)
    assert image[..., :3].std() > 0.05  # not a single colour
    assert not Path(str(path) + ".tmp").exists()


def brute_force_pr(scores, labels):
    """For each distinct threshold t (increasing): precision and recall of "same if score >= t"."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    thresholds = sorted(set(scores.tolist()))
    precision, recall = [], []
    for t in thresholds:
        predicted = scores >= t
        precision.append(labels[predicted].sum() / predicted.sum())
        recall.append(labels[predicted].sum() / labels.sum())
    return np.array(precision), np.array(recall), np.array(thresholds)


def brute_force_ap(scores, labels) -> float:
    precision, recall, _ = brute_force_pr(scores, labels)
    ap, previous_recall = 0.0, 0.0
    for p, r in zip(precision[::-1], recall[::-1], strict=True):  # from the highest threshold down
        ap += (r - previous_recall) * p
        previous_recall = r
    return ap


def scored_pairs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.35).astype(int)
    scores = np.clip(rng.normal(0.5 + 0.3 * labels, 0.15), -1, 1)
    return scores, labels


# ----------------------------------------------------------------------------------------- PR points / AP
def test_pr_points_hand_computed():
    scores = [0.9, 0.8, 0.8, 0.5, 0.3]
    labels = [1, 0, 1, 1, 0]
    precision, recall, thresholds = plots.precision_recall_points(scores, labels)
    # t = 0.3: 3 tp, 2 fp; 0.5: 3, 1; 0.8 (a tie, one threshold): 2, 1; 0.9: 1, 0; then the closing point
    np.testing.assert_allclose(thresholds, [0.3, 0.5, 0.8, 0.9])
    np.testing.assert_allclose(precision, [3 / 5, 3 / 4, 2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 2 / 3, 1 / 3, 0.0])
    # AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/4 + 0 * 3/5 = 29/36
    assert plots.average_precision(scores, labels) == pytest.approx(29 / 36)


@pytest.mark.parametrize("seed", range(8))
def test_pr_points_match_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    scores = rng.integers(0, 10, n) / 9.0  # at most 10 distinct values: many ties
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]  # both classes present
    precision, recall, thresholds = plots.precision_recall_points(scores, labels)
    ref_precision, ref_recall, ref_thresholds = brute_force_pr(scores, labels)
    assert len(thresholds) == len(np.unique(scores)) < n
    np.testing.assert_allclose(thresholds, ref_thresholds)
    np.testing.assert_allclose(precision, np.r_[ref_precision, 1.0])
    np.testing.assert_allclose(recall, np.r_[ref_recall, 0.0])
    ap = plots.average_precision(scores, labels)
    assert ap == pytest.approx(brute_force_ap(scores, labels))
    assert ap == pytest.approx(best_threshold_metrics(scores, labels)["ap"])  # one definition package-wide


def test_pr_points_match_sklearn_when_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    scores, labels = scored_pairs()
    scores = np.round(scores, 2)  # ties
    precision, recall, thresholds = plots.precision_recall_points(scores, labels)
    ref_precision, ref_recall, ref_thresholds = metrics.precision_recall_curve(labels, scores)
    np.testing.assert_allclose(precision, ref_precision)
    np.testing.assert_allclose(recall, ref_recall)
    np.testing.assert_allclose(thresholds, ref_thresholds)
    assert plots.average_precision(scores, labels) == pytest.approx(
        metrics.average_precision_score(labels, scores)
    )


def test_perfect_and_reversed_ranking():
    assert plots.average_precision([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == pytest.approx(1.0)
    # all positives ranked last: precision 1/3 at recall 1/2, 2/4 at recall 1
    assert plots.average_precision([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx(0.5 / 3 + 0.5 / 2)
    # one tie holding everything: a single threshold at the share of positives
    precision, recall, thresholds = plots.precision_recall_points([0.5] * 4, [1, 0, 0, 0])
    np.testing.assert_allclose(thresholds, [0.5])
    np.testing.assert_allclose(precision, [0.25, 1.0])
    assert plots.average_precision([0.5] * 4, [1, 0, 0, 0]) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        ([0.1, 0.2], [0, 1, 1], "differ in length"),
        ([], [], "no scores"),
        ([0.1, 0.2], [0, 0], "no positive"),
        ([0.1, 0.2], [1, 1], "no negative"),
        ([0.1, 0.2], [0, 2], "0 or 1"),
        ([0.1, float("nan")], [0, 1], "finite"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
    ],
)
def test_pr_errors(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        plots.precision_recall_points(scores, labels)
    with pytest.raises(ValueError, match=message):
        plots.average_precision(scores, labels)


# ------------------------------------------------------------------------------------------------- plots
def test_similarity_histogram_png_and_data(tmp_path):
    scores, labels = scored_pairs()
    out = plots.similarity_histogram(
        scores, labels, tmp_path / "a" / "b" / "hist.png", threshold=0.65, bins=20
    )
    assert out == tmp_path / "a" / "b" / "hist.png"
    assert_png(out)

    fig = plots.similarity_histogram_figure(scores, labels, threshold=0.65, bins=20, xlabel="dot product")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "dot product"
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [0.65, 0.65]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    n_pos = int(labels.sum())
    assert legend == [f"non-duplicate (n={len(labels) - n_pos})", f"duplicate (n={n_pos})", "threshold 0.65"]
    # 20 shared bins per class, each a density
    assert len(ax.patches) == 40
    edges = np.histogram_bin_edges(scores, bins=20)
    heights = np.array([patch.get_height() for patch in ax.patches[20:]])
    np.testing.assert_allclose(heights, np.histogram(scores[labels == 1], bins=edges, density=True)[0])
    assert np.sum(heights * np.diff(edges)) == pytest.approx(1.0)


def test_similarity_histogram_one_class_and_no_threshold():
    fig = plots.similarity_histogram_figure([0.2, 0.4, 0.4], [0, 0, 0], bins=5)
    (ax,) = fig.axes
    assert not [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["non-duplicate (n=3)", "duplicate (n=0)"]
    with pytest.raises(ValueError, match="no scores"):
        plots.similarity_histogram_figure([], [])


def test_precision_recall_png_and_data(tmp_path):
    scores, labels = scored_pairs()
    out = plots.precision_recall_curve_plot(scores, labels, tmp_path / "pr.png", threshold=0.6)
    assert_png(out)

    fig = plots.precision_recall_figure(scores, labels, title="dev", threshold=0.6)
    (ax,) = fig.axes
    precision, recall, _ = plots.precision_recall_points(scores, labels)
    curve = ax.get_lines()[0]
    np.testing.assert_allclose(curve.get_xdata(), recall)
    np.testing.assert_allclose(curve.get_ydata(), precision)
    ap = plots.average_precision(scores, labels)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[0].startswith(f"AP = {ap:.4f}")
    predicted = scores >= 0.6
    marker = ax.get_lines()[-1]
    assert marker.get_xdata()[0] == pytest.approx(labels[predicted].sum() / labels.sum())
    assert marker.get_ydata()[0] == pytest.approx(labels[predicted].mean())
    assert ax.get_title() == "dev"


def test_precision_recall_plot_needs_both_classes(tmp_path):
    with pytest.raises(ValueError, match="no positive"):
        plots.precision_recall_curve_plot([0.1, 0.2], [0, 0], tmp_path / "pr.png")
    assert not (tmp_path / "pr.png").exists()


def test_write_pair_plots(tmp_path):
    scores, labels = scored_pairs()
    paths = plots.write_pair_plots(
        {"qqp-dev": (scores, labels, 0.6), "cos/dot": (scores[::-1], labels, None)},
        tmp_path / "plots",
        "test",
    )
    assert [p.name for p in paths] == [
        "test_qqp-dev_similarity.png",
        "test_qqp-dev_pr_curve.png",
        "test_cos_dot_similarity.png",
        "test_cos_dot_pr_curve.png",
    ]
    for path in paths:
        assert_png(path)
    with pytest.raises(ValueError, match="^bad: .*no negative"):
        plots.write_pair_plots({"bad": ([0.1, 0.2], [1, 1], None)}, tmp_path)


def test_plots_leave_pyplot_alone(tmp_path):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plots.similarity_histogram([0.1, 0.9], [0, 1], tmp_path / "h.png")
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


def test_import_does_not_load_matplotlib():
    code = "import sys, sbert_siamese.evaluation.plots; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------- training curves
def write_log(path: Path, eval_key: str = "sts-dev_spearman_cosine") -> tuple[list[int], list[float]]:
    """A train_log.jsonl like the trainer writes: an eval-only step 0, loss rows, eval keys every 10 steps."""
    rows = [{"step": 0, eval_key: 0.5, "sts-dev_pearson_cosine": 0.4}]
    eval_steps, eval_values = [0], [0.5]
    for step in range(1, 31):
        row = {"step": step, "loss": 1.0 / step, "lr": 1e-5}
        if step % 10 == 0:
            row[eval_key] = 0.5 + step / 100
            row["sts-dev_pearson_cosine"] = 0.45
            eval_steps.append(step)
            eval_values.append(row[eval_key])
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return eval_steps, eval_values


def test_training_curve_png_and_data(tmp_path):
    log = tmp_path / "my_run" / "train_log.jsonl"
    eval_steps, eval_values = write_log(log)
    out = plots.training_curve(log, tmp_path / "curve.png")
    assert_png(out)

    fig = plots.training_curve_figure(log)
    loss_ax, metric_ax = fig.axes  # twinx: the metric on its own right-hand axis
    assert loss_ax.get_title() == "my_run"
    raw, smoothed = loss_ax.get_lines()
    np.testing.assert_allclose(raw.get_xdata(), range(1, 31))
    np.testing.assert_allclose(raw.get_ydata(), [1.0 / s for s in range(1, 31)])
    assert smoothed.get_ydata()[0] == pytest.approx(1.0)  # bias-corrected EMA starts at the first value
    assert np.all(np.diff(smoothed.get_ydata()) < 0)
    metric_line, best = metric_ax.get_lines()
    assert metric_ax.get_ylabel() == "sts-dev_spearman_cosine"
    np.testing.assert_allclose(metric_line.get_xdata(), eval_steps)
    np.testing.assert_allclose(metric_line.get_ydata(), eval_values)
    assert (best.get_xdata()[0], best.get_ydata()[0]) == (30, pytest.approx(0.8))


def test_training_curve_from_rows_and_named_metric(tmp_path):
    rows = [{"step": 0, "a_f1_cosine": 0.3}, {"step": 5, "loss": 0.2, "a_f1_cosine": 0.6}]
    fig = plots.training_curve_figure(rows, metric="a_f1_cosine", title="rows")
    assert fig.axes[1].get_ylabel() == "a_f1_cosine"
    assert fig.axes[0].get_title() == "rows"
    with pytest.raises(ConfigError, match="a_f1_cosine"):
        plots.training_curve_figure(rows, metric="missing")
    # metric only (no loss): one axis
    (ax,) = plots.training_curve_figure(
        [{"step": 0, "x_ap_cosine": 0.5}, {"step": 1, "x_ap_cosine": 0.7}]
    ).axes
    assert ax.get_ylabel() == "x_ap_cosine"
    with pytest.raises(DataError, match="no finite 'loss' or metric"):
        plots.training_curve_figure([{"step": 0, "lr": 0.1}])
    with pytest.raises(DataError, match="row 2: expected a numeric 'step'"):
        plots.training_curve_figure([{"step": 0, "loss": 1.0}, {"loss": 0.5}])


def test_select_metric():
    spearman_last = [{"step": 0, "q_ap_cosine": 0.1}, {"step": 1, "s_spearman_cosine": 0.2}]
    assert plots.select_metric(spearman_last) == "s_spearman_cosine"
    ap = [{"step": 0, "q_accuracy_cosine": 0.9, "q_ap_euclidean": 0.8, "q_ap_cosine": 0.7}]
    assert plots.select_metric(ap) == "q_ap_cosine"
    other = [
        {"step": 0, "loss": 1.0, "val_loss": 2.0, "lr": 0.1, "q_f1_threshold_cosine": 0.5, "q_f1_cosine": 0.6}
    ]
    assert plots.select_metric(other) == "q_f1_cosine"
    assert plots.select_metric([{"step": 1, "loss": 0.5, "lr": 1e-5, "note": "text"}]) is None


def test_training_curve_on_repo_log_format(tmp_path):
    log = tmp_path / "run" / "train_log.jsonl"
    write_log(log, eval_key="qqp-dev_ap_cosine")
    fig = plots.training_curve_figure(log)
    assert fig.axes[1].get_ylabel() == "qqp-dev_ap_cosine"


def test_bad_log_line_names_file_and_line(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 0.5}\n\n{"step": 2, "loss": 0.4\n', encoding="utf-8")
    with pytest.raises(DataError, match="invalid JSON") as info:
        plots.training_curve(log, tmp_path / "curve.png")
    assert info.value.line == 3 and info.value.path == str(log)
    assert str(info.value).startswith(f"{log}:3: ")
    assert not (tmp_path / "curve.png").exists()

    log.write_text('{"step": 1, "loss": 0.5}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON object") as info:
        plots.read_train_log(log)
    assert info.value.line == 2
    log.write_text('{"loss": 0.5}\n', encoding="utf-8")
    with pytest.raises(DataError, match="numeric 'step'") as info:
        plots.read_train_log(log)
    assert info.value.line == 1
    with pytest.raises(DataError, match="file not found"):
        plots.read_train_log(tmp_path / "missing.jsonl")
