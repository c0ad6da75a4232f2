"""The STS evaluation of the SBERT paper's Table 1: STS12-16, STS-B test and SICK-R test, Spearman (x100)
between gold scores and the cosine similarity of the two sentence embeddings, no training on the data.

Aggregation of STS12-16 (the "all" setting): each year is scored by one Spearman correlation over all of
its subsets concatenated. This is what the SBERT paper's Table 1 reports (SimCSE, Gao et al. 2021,
Appendix B: SBERT used the "all" setting with Spearman) and what SimCSE's SentEval fork computes as
``results['all']['spearman']['all']``. The original SentEval only returns the plain and the
size-weighted mean of the per-subset correlations ("mean", "wmean"); both are available with
``aggregate=`` and, per subset, in ``STSSuiteResults.details``.

Expected layout under ``data_dir`` (the first candidate found is used; see ``DATASET_PATHS``)::

    sts12-16/STS12 ... sts12-16/STS16   per-year folders of STS.input.<set>.txt + STS.gs.<set>.txt
                                        (STS16: STS2016.input.<set>.txt, STS2016.gs.<set>.txt)
    stsbenchmark/sts-test.csv           original STS-B release (read with ``read_stsb``)
    sick/SICK_test_annotated.txt        SemEval-2014 SICK test file (relatedness_score column)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ..data.readers import Columns, PairExample, ScoreRange, read_pairs, read_stsb
from ..data.rows import _lines, _read_text, _text
from ..errors import ConfigError, DataError
from ..models.scoring import embed_pairs, pairwise_similarities

SUITE = ("STS12", "STS13", "STS14", "STS15", "STS16", "STSb", "SICK-R")

# The subsets SentEval evaluates. STS13 has no SMT input (LDC licence): FNWN, OnWN, headlines only.
STS_SUBSETS = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}

# Candidate locations relative to data_dir, first match wins.
DATASET_PATHS = {
    **{year: (f"sts12-16/{year}", year) for year in STS_SUBSETS},
    "STSb": ("stsbenchmark/sts-test.csv", "STSBenchmark/sts-test.csv", "sts-test.csv"),
    "SICK-R": ("sick/SICK_test_annotated.txt", "SICK/SICK_test_annotated.txt", "SICK_test_annotated.txt"),
}

AGGREGATES = ("all", "wmean", "mean")
STS_SCORES = ScoreRange(0.0, 5.0)
SICK_SCORES = ScoreRange(1.0, 5.0)
SICK_COLUMNS = Columns("sentence_A", "sentence_B", "relatedness_score")


class STSSuiteData(dict):
    """``name -> {subset: [PairExample, ...]}`` for the datasets found, in ``SUITE`` order; ``missing``
    maps each dataset not found to the paths tried. STS-B and SICK-R have one subset, ``test``."""

    def __init__(self, *args, missing: Mapping[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.missing: dict[str, str] = dict(missing or {})

    def pairs(self, name: str) -> list[PairExample]:
        """All pairs of dataset ``name``, subsets concatenated in order."""
        return [example for subset in self[name].values() for example in subset]


class STSSuiteResults(dict):
    """``{name: Spearman x 100, ..., "avg": mean over the datasets present}``; ``missing`` as in
    ``STSSuiteData``; ``details[name]`` holds per-subset Spearman x 100 and, for STS12-16, the "all",
    "mean" and "wmean" aggregates and the pair count ``n``."""

    def __init__(
        self,
        *args,
        missing: Mapping[str, str] | None = None,
        details: Mapping[str, dict[str, float]] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.missing: dict[str, str] = dict(missing or {})
        self.details: dict[str, dict[str, float]] = dict(details or {})


def _sts_file(folder: Path, year: str, kind: str, subset: str) -> Path:
    """``STS.<kind>.<subset>.txt``, or the STS2016 naming ``STS2016.<kind>.<subset>.txt``."""
    plain = folder / f"STS.{kind}.{subset}.txt"
    if plain.exists():
        return plain
    prefixed = folder / f"STS20{year[-2:]}.{kind}.{subset}.txt"
    return prefixed if prefixed.exists() else plain


def _content_lines(path: Path, expected: str) -> list[tuple[int, str]]:
    lines = list(_lines(_read_text(path, expected)))
    if lines and not lines[-1][1]:
        lines.pop()  # the newline that ends the last line
    return lines


def read_sts_subset(input_path: str | Path, gold_path: str | Path) -> list[PairExample]:
    """Scored pairs of one SemEval STS subset: ``input_path`` has ``sentence1<TAB>sentence2[<TAB>...]``
    per line (extra source columns ignored), ``gold_path`` one score in [0, 5] per line, aligned by line
    number; an empty gold line means "not scored" and the pair is skipped. Scores are scaled to [0, 1];
    ``source`` is ``input_path:line``."""
    input_path, gold_path = str(input_path), str(gold_path)
    inputs = _content_lines(Path(input_path), "sentence pairs")
    golds = _content_lines(Path(gold_path), "gold scores")
    if len(inputs) != len(golds):
        raise DataError(
            f"has {len(golds)} lines but {input_path} has {len(inputs)}; they must align line by line",
            gold_path,
        )
    examples = []
    for (line_no, line), (_, gold) in zip(inputs, golds, strict=True):
        if not gold.strip():
            continue
        score = STS_SCORES.scale(gold.strip(), gold_path, line_no)
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(
                f"expected 2 tab-separated sentences (sentence1, sentence2), found {len(fields)} field(s)",
                input_path,
                line_no,
            )
        a = _text(fields[0], "sentence1", input_path, line_no)
        b = _text(fields[1], "sentence2", input_path, line_no)
        examples.append(PairExample(a, b, score, f"{input_path}:{line_no}"))
    return examples


def read_sts_year(
    folder: str | Path, year: str, subsets: Sequence[str] | None = None
) -> dict[str, list[PairExample]]:
    """``{subset: pairs}`` of one STS year folder (``year`` like ``"STS12"``); ``subsets`` defaults to
    SentEval's list ``STS_SUBSETS[year]``. A listed subset without its files is an error."""
    if subsets is None:
        if year not in STS_SUBSETS:
            raise ConfigError(f"unknown STS year {year!r}; valid: {', '.join(STS_SUBSETS)}")
        subsets = STS_SUBSETS[year]
    folder = Path(folder)
    out = {}
    for subset in subsets:
        input_path = _sts_file(folder, year, "input", subset)
        gold_path = _sts_file(folder, year, "gs", subset)
        for path in (input_path, gold_path):
            if not path.exists():
                raise DataError(f"file not found (subset {subset!r} of {year})", str(path))
        out[subset] = read_sts_subset(input_path, gold_path)  # a blank gold file is an error
    return out


def read_sick(path: str | Path) -> list[PairExample]:
    """SICK SemEval-2014 file (tab-separated, header ``pair_ID sentence_A sentence_B relatedness_score
    entailment_judgment``); relatedness 1-5 scaled to [0, 1]."""
    return read_pairs(path, "tsv", SICK_COLUMNS, SICK_SCORES)


def load_sts_suite(data_dir: str | Path, names: Sequence[str] = SUITE) -> STSSuiteData:
    """The test sets of the suite found under ``data_dir`` (layout: module docstring). Datasets not found
    are listed in ``.missing``; if none is found, ``DataError``. Malformed files raise ``DataError`` with
    the file and line."""
    unknown = [n for n in names if n not in DATASET_PATHS]
    if unknown:
        raise ConfigError(f"unknown STS suite dataset(s) {unknown}; valid: {', '.join(SUITE)}")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError("STS suite data directory not found", str(root))
    data = STSSuiteData()
    for name in names:
        found = next((root / rel for rel in DATASET_PATHS[name] if (root / rel).exists()), None)
        if found is None:
            data.missing[name] = ", ".join(str(root / rel) for rel in DATASET_PATHS[name])
        elif name in STS_SUBSETS:
            data[name] = read_sts_year(found, name)
        elif name == "STSb":
            data[name] = {"test": read_stsb(found)}
        else:
            data[name] = {"test": read_sick(found)}
    if not data:
        raise DataError(
            f"none of the STS suite datasets found; expected e.g. {DATASET_PATHS['STS12'][0]}/, "
            f"{DATASET_PATHS['STSb'][0]}, {DATASET_PATHS['SICK-R'][0]}",
            str(root),
        )
    return data


def _spearman(gold: np.ndarray, predicted: np.ndarray) -> float:
    return float(spearmanr(gold, predicted)[0]) * 100


def score_sts_suite(
    data: Mapping[str, Mapping[str, Sequence[PairExample]]],
    cosine_by_dataset: Mapping[str, np.ndarray],
    aggregate: str = "all",
) -> STSSuiteResults:
    """Suite results from the cosine similarity of every pair (``cosine_by_dataset[name]`` aligned with
    the dataset's subsets concatenated in order)."""
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    results = STSSuiteResults(missing=getattr(data, "missing", {}))
    for name in SUITE:
        if name not in data:
            continue
        subsets = data[name]
        cosine = np.asarray(cosine_by_dataset[name], dtype=np.float64)
        gold = np.array([e.score for subset in subsets.values() for e in subset], dtype=np.float64)
        if len(gold) != len(cosine):
            raise ValueError(f"{name}: {len(gold)} pairs but {len(cosine)} similarities")
        details, sizes, start = {}, [], 0
        for subset, examples in subsets.items():
            details[subset] = _spearman(
                gold[start : start + len(examples)], cosine[start : start + len(examples)]
            )
            sizes.append(len(examples))
            start += len(examples)
        per_subset = np.array([details[s] for s in subsets])
        details["all"] = _spearman(gold, cosine)
        details["mean"] = float(np.mean(per_subset))
        details["wmean"] = float(np.average(per_subset, weights=sizes))
        details["n"] = float(len(gold))
        results.details[name] = details
        results[name] = details[aggregate if name in STS_SUBSETS else "all"]
    results["avg"] = float(np.mean([results[name] for name in SUITE if name in results]))
    return results


def evaluate_sts_suite(
    model,
    data_dir: str | Path,
    batch_size: int = 64,
    show_progress_bar: bool = False,
    aggregate: str = "all",
    names: Sequence[str] = SUITE,
) -> STSSuiteResults:
    """Spearman x 100 of cosine similarity vs gold on each dataset of the suite found under ``data_dir``,
    plus ``"avg"`` over those found (``.missing`` lists the others). ``aggregate`` picks how STS12-16
    combine their subsets: ``"all"`` (concatenated, the SBERT/SimCSE convention), ``"wmean"`` or ``"mean"``
    of per-subset correlations (original SentEval)."""
    if aggregate not in AGGREGATES:
        raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    data = load_sts_suite(data_dir, names)
    cosine = {}
    for name in data:
        pairs = data.pairs(name)
        u, v = embed_pairs(
            model, [e.text_a for e in pairs], [e.text_b for e in pairs], batch_size, show_progress_bar
        )
        cosine[name] = pairwise_similarities(u, v)["cosine"]
    return score_sts_suite(data, cosine, aggregate)


def sts_suite_markdown(
    results: Mapping[str, Mapping[str, float]] | Mapping[str, float], digits: int = 2
) -> str:
    """A Markdown table in the layout of the SBERT paper's Table 1: one row per model, columns STS12 STS13
    STS14 STS15 STS16 STSb SICK-R Avg.

    ``results`` is one model's results (row label "model") or ``{model name: results}``. A dataset a model
    lacks shows as "–"; its average is then over the datasets present and is marked with "*".
    """
    if results and all(isinstance(v, int | float) for v in results.values()):
        results = {"model": results}
    header = "| Model | " + " | ".join(SUITE) + " | Avg. |"
    rule = "|:--|" + "--:|" * (len(SUITE) + 1)
    rows, partial = [header, rule], False
    for model_name, scores in results.items():
        if not isinstance(scores, Mapping):
            raise ConfigError(f"results for {model_name!r} must be a mapping of dataset -> score")
        present = [scores[name] for name in SUITE if name in scores]
        cells = [f"{scores[name]:.{digits}f}" if name in scores else "–" for name in SUITE]
        if not present:
            average = "–"
        else:
            average = f"{np.mean(present):.{digits}f}"
            if len(present) < len(SUITE):
                average += "*"
                partial = True
        rows.append(f"| {model_name} | " + " | ".join(cells) + f" | {average} |")
    if partial:
        rows.append("")
        rows.append("\\* average over the datasets present only.")
    return "\n".join(rows) + "\n"
