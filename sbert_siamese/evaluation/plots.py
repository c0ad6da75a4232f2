"""PNG plots beside the metrics: similarity histograms, precision-recall curves and training curves.

Every ``*_figure`` function builds and returns a matplotlib ``Figure`` without saving it (for tests and for
callers that want to add to it); the plain functions build, write a PNG to ``path`` (creating its parent
folders) and return the path. Figures use matplotlib's object API on an Agg canvas, never pyplot's global
state, so plotting works headless and does not touch the caller's pyplot figures. matplotlib is imported
only when a plot is made, so importing this module stays cheap.

Scores are similarities ("same if score >= t", higher = more similar); labels are 1 = same / duplicate and
0 = different.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, DataError
from ..io.safe_io import safe_name, writing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGSIZE = (6.4, 4.0)  # inches
DPI = 120  # FIGSIZE * DPI = 768 x 480 pixels
_NOT_METRICS = {"step", "lr", "learning_rate", "epoch"}


# ------------------------------------------------------------------------------------------------ numbers
def _check_pairs(scores, labels, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Scores as finite float64 and labels as bool, both 1-D and of one length; ValueError otherwise."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, got shapes {scores.shape} and {labels.shape}")
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels differ in length: {len(scores)} and {len(labels)}")
    if len(scores) == 0:
        raise ValueError("no scores: need at least one labelled pair")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"scores must be finite; found {int(np.sum(~np.isfinite(scores)))} NaN or infinite")
    bad = np.setdiff1d(np.unique(labels), [0, 1])
    if bad.size:
        raise ValueError(f"labels must be 0 or 1, found {bad[:5].tolist()}")
    labels = labels.astype(bool)
    if need_both:
        positives = int(labels.sum())
        if positives == 0 or positives == len(labels):
            missing = "positive (label 1)" if positives == 0 else "negative (label 0)"
            raise ValueError(
                f"the precision-recall curve needs both classes; no {missing} pairs among {len(labels)}"
            )
    return scores, labels


def precision_recall_points(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall of "same if score >= t" at every distinct score t, in scikit-learn's layout.

    Returns ``(precision, recall, thresholds)``: ``thresholds`` are the K distinct scores in increasing
    order (tied scores are one threshold); ``precision[i]`` and ``recall[i]`` belong to ``thresholds[i]``,
    and a last point (precision 1, recall 0) closes the curve, so both have K + 1 entries and recall
    decreases. Raises ValueError on empty or mismatched input, or when either class is missing.
    """
    from .pair_classification import threshold_sweep

    scores, labels = _check_pairs(scores, labels)
    sweep = threshold_sweep(scores, labels)  # cut points in decreasing threshold order, "nothing" first
    tp, fp = sweep["tp"][1:].astype(np.float64), sweep["fp"][1:].astype(np.float64)
    distinct = np.unique(scores)  # increasing
    if len(distinct) != len(tp):  # threshold_sweep groups ties exactly as np.unique does
        raise AssertionError("threshold_sweep and np.unique disagree on the distinct scores")
    precision = tp / (tp + fp)  # every threshold is a score, so at least one pair is predicted "same"
    recall = tp / labels.sum()
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], distinct


def average_precision(scores, labels) -> float:
    """Average precision, sum over thresholds of (R_k - R_{k-1}) * P_k (scikit-learn's step-wise definition,
    no interpolation); the same value as ``best_threshold_metrics(...)["ap"]``."""
    precision, recall, _ = precision_recall_points(scores, labels)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def _ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with start-up bias correction (as TensorBoard's smoothing)."""
    out = np.empty_like(values)
    last, norm = 0.0, 0.0
    for i, value in enumerate(values):
        last = weight * last + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out[i] = last / norm
    return out


# ------------------------------------------------------------------------------------------------ figures
def _new_figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` (parent folders created; replaced atomically), then free it.

    A full disk or a missing permission raises ``OutputError`` naming ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path, "the plot"):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fig.savefig(tmp, format="png", dpi=DPI)
                tmp.replace(path)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        fig.clear()
    return path


def similarity_histogram_figure(
    scores,
    labels,
    threshold: float | None = None,
    title: str = "Similarity of labelled pairs",
    bins: int = 50,
    names: tuple[str, str] = ("non-duplicate", "duplicate"),
    xlabel: str = "cosine similarity",
) -> Figure:
    """Overlaid density histograms of the label-0 and label-1 scores (shared bins), counts in the legend,
    and a dashed vertical line at ``threshold`` when given. One class may be absent."""
    scores, labels = _check_pairs(scores, labels, need_both=False)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    edges = np.histogram_bin_edges(scores, bins=bins)
    fig = _new_figure()
    ax = fig.add_subplot()
    for value, name, color in ((False, names[0], "tab:blue"), (True, names[1], "tab:orange")):
        group = scores[labels == value]
        label = f"{name} (n={len(group):,})"
        if len(group):
            ax.hist(group, bins=edges, density=True, alpha=0.5, color=color, label=label)
        else:
            ax.plot([], [], color=color, label=label)  # keep the zero count visible in the legend
    if threshold is not None:
        threshold = float(threshold)
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="best")
    return fig


def similarity_histogram(
    scores,
    labels,
    path: str | Path,
    threshold: float | None = None,
    title: str = "Similarity of labelled pairs",
    bins: int = 50,
    names: tuple[str, str] = ("non-duplicate", "duplicate"),
    xlabel: str = "cosine similarity",
) -> Path:
    """Write ``similarity_histogram_figure(...)`` as a PNG to ``path``; returns the path."""
    fig = similarity_histogram_figure(scores, labels, threshold, title, bins, names, xlabel)
    return save_figure(fig, path)


def precision_recall_figure(
    scores, labels, title: str = "Precision-recall", threshold: float | None = None
) -> Figure:
    """Precision against recall (a step curve whose area is the AP, given in the legend), the chance level
    (precision = share of positives), and a marker at ``threshold``'s operating point when given."""
    scores, labels = _check_pairs(scores, labels)
    precision, recall, _ = precision_recall_points(scores, labels)
    ap = float(-np.sum(np.diff(recall) * precision[:-1]))
    prevalence = float(labels.mean())
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(
        recall,
        precision,
        drawstyle="steps-post",  # recall decreases along the arrays: precision holds back to the next point
        color="tab:blue",
        label=f"AP = {ap:.4f} ({int(labels.sum()):,} of {len(labels):,} positive)",
    )
    ax.axhline(prevalence, color="grey", linestyle=":", linewidth=1, label=f"chance ({prevalence:.3f})")
    if threshold is not None:
        threshold = float(threshold)
        predicted = scores >= threshold
        if predicted.any():
            p = float(labels[predicted].mean())
            r = float(labels[predicted].sum() / labels.sum())
            ax.plot([r], [p], "o", color="black", label=f"threshold {threshold:.4g}: P {p:.3f}, R {r:.3f}")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.legend(loc="lower left")
    return fig


def precision_recall_curve_plot(
    scores, labels, path: str | Path, title: str = "Precision-recall", threshold: float | None = None
) -> Path:
    """Write ``precision_recall_figure(...)`` as a PNG to ``path``; returns the path."""
    return save_figure(precision_recall_figure(scores, labels, title, threshold), path)


# ------------------------------------------------------------------------------------------ training logs
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_train_log(path: str | Path) -> list[dict]:
    """The records of a ``train_log.jsonl`` (one JSON object per line; blank lines skipped).

    Raises DataError naming ``file:line`` for a line that is not a JSON object or has no numeric ``step``.
    """
    from ..data.rows import _rows_from_jsonl

    rows = []
    for line_no, row in _rows_from_jsonl(str(path), expected="a training log (one JSON object per line)"):
        if not _is_number(row.get("step")):
            raise DataError(f"expected a numeric 'step', found {row.get('step')!r}", str(path), line_no)
        rows.append(row)
    return rows


def select_metric(rows: Iterable[Mapping[str, Any]]) -> str | None:
    """The dev metric to plot: the first key ending in ``_spearman_cosine``, else ``_ap_cosine``, else the
    first other numeric key that is not a loss, step, learning rate, epoch or threshold; None if none."""
    keys: dict[str, None] = {}  # numeric keys in order of first appearance
    for row in rows:
        for key, value in row.items():
            if _is_number(value) and key not in _NOT_METRICS and "loss" not in key:
                keys.setdefault(key)
    for suffix in ("_spearman_cosine", "_ap_cosine"):
        for key in keys:
            if key.endswith(suffix):
                return key
    return next((key for key in keys if "threshold" not in key), None)


def _checked_rows(rows: Iterable[Any]) -> list[Mapping[str, Any]]:
    checked = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise DataError(f"training-log row {i}: expected a mapping, found {type(row).__name__}")
        if not _is_number(row.get("step")):
            raise DataError(f"training-log row {i}: expected a numeric 'step', found {row.get('step')!r}")
        checked.append(row)
    return checked


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the rows holding a finite number under ``key``, sorted by step."""
    pairs = [
        (float(row["step"]), float(row[key]))
        for row in rows
        if _is_number(row.get(key)) and math.isfinite(row[key])
    ]
    pairs.sort(key=lambda pair: pair[0])
    if not pairs:
        return np.empty(0), np.empty(0)
    table = np.asarray(pairs)
    return table[:, 0], table[:, 1]


def training_curve_figure(
    log_path_or_rows: str | Path | Iterable[Mapping[str, Any]],
    metric: str | None = None,
    title: str | None = None,
    smoothing: float = 0.9,
) -> Figure:
    """Training loss per step (raw, and smoothed by a bias-corrected EMA of weight ``smoothing``) on the
    left axis and the dev ``metric`` per evaluation step on a right axis (its maximum marked).

    ``log_path_or_rows``: a ``train_log.jsonl`` path or its records. ``metric=None`` picks one with
    ``select_metric``; a named metric that never appears raises ConfigError listing those that do.
    ``title`` defaults to the log's folder name (the run).
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if isinstance(log_path_or_rows, (str, Path)):
        rows: list[Mapping[str, Any]] = read_train_log(log_path_or_rows)
        origin = str(log_path_or_rows)
        if title is None:
            title = Path(log_path_or_rows).resolve().parent.name or "training curve"
    else:
        rows = _checked_rows(log_path_or_rows)
        origin = None
    title = title or "training curve"
    if metric is None:
        metric = select_metric(rows)
    elif not any(_is_number(row.get(metric)) for row in rows):
        available = sorted({k for row in rows for k, v in row.items() if _is_number(v)} - _NOT_METRICS)
        raise ConfigError(f"metric {metric!r} is not in the training log; numeric keys: {available}")
    loss_steps, losses = _series(rows, "loss")
    metric_steps, metric_values = _series(rows, metric) if metric else (np.empty(0), np.empty(0))
    if not len(losses) and not len(metric_values):
        raise DataError("no finite 'loss' or metric values to plot", origin)

    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_xlabel("step")
    ax.set_title(title)
    metric_ax = ax
    if len(losses):
        ax.plot(loss_steps, losses, color="tab:blue", alpha=0.35, linewidth=0.8, label="loss")
        if smoothing > 0 and len(losses) >= 10:
            ax.plot(loss_steps, _ema(losses, smoothing), color="tab:blue", linewidth=1.6, label="loss (EMA)")
        ax.set_ylabel("training loss", color="tab:blue")
        if len(metric_values):
            metric_ax = ax.twinx()
    if len(metric_values):
        best = int(np.argmax(metric_values))
        metric_ax.plot(
            metric_steps, metric_values, "o-", color="tab:red", markersize=3, linewidth=1.2, label=metric
        )
        metric_ax.plot(
            [metric_steps[best]],
            [metric_values[best]],
            "*",
            color="tab:red",
            markersize=12,
            label=f"max {metric_values[best]:.4f} @ step {metric_steps[best]:g}",
        )
        metric_ax.set_ylabel(metric, color="tab:red")
    handles, labels = ax.get_legend_handles_labels()
    if metric_ax is not ax:
        more_handles, more_labels = metric_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    metric_ax.legend(handles, labels, loc="best", fontsize="small")  # on the top axes: not hidden by lines
    return fig


def training_curve(
    log_path_or_rows: str | Path | Iterable[Mapping[str, Any]],
    path: str | Path,
    metric: str | None = None,
    title: str | None = None,
    smoothing: float = 0.9,
) -> Path:
    """Write ``training_curve_figure(...)`` as a PNG to ``path``; returns the path."""
    return save_figure(training_curve_figure(log_path_or_rows, metric, title, smoothing), path)


# ---------------------------------------------------------------------------------------------- batches
def _file_part(name: str) -> str:
    """A file-name piece from a (recipe-given) name: no separators, no leading or trailing dots."""
    return re.sub(r"[^\w.-]+", "_", str(name)).strip("_.") or "pairs"


def write_pair_plots(
    scores_by_name: Mapping[str, tuple[Any, Any, float | None]],
    out_dir: str | Path,
    prefix: str = "",
    xlabel: str = "cosine similarity",
) -> list[Path]:
    """For each ``name -> (scores, labels, threshold)``: a similarity histogram
    ``{prefix}_{name}_similarity.png`` and a PR curve ``{prefix}_{name}_pr_curve.png`` in ``out_dir``.

    Returns the written paths in order (histogram, PR curve per entry). Errors name the entry. Names are
    reduced to safe file-name pieces (``../../x`` gives ``x``), so every file lands in ``out_dir``.
    """
    out_dir = Path(out_dir)
    paths = []
    for name, (scores, labels, threshold) in scores_by_name.items():
        stem = "_".join(part for part in (_file_part(prefix) if prefix else "", _file_part(name)) if part)
        heading = f"{prefix} {name}".strip()
        try:
            paths.append(
                similarity_histogram(
                    scores,
                    labels,
                    out_dir / safe_name(f"{stem}_similarity.png", "plot file name"),
                    threshold=threshold,
                    title=f"{heading}: similarity",
                    xlabel=xlabel,
                )
            )
            paths.append(
                precision_recall_curve_plot(
                    scores,
                    labels,
                    out_dir / safe_name(f"{stem}_pr_curve.png", "plot file name"),
                    title=f"{heading}: precision-recall",
                    threshold=threshold,
                )
            )
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    return paths
