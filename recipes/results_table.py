"""Print a markdown table of the headline metrics of finished recipe runs.

Usage: python recipes/results_table.py runs/qqp_contrastive runs/qqp_softmax ...
(each a training output directory holding metrics.json and recipe.yaml)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HEADLINES = (
    "qqp-test_ap_head",
    "qqp-test_ap_cosine",
    "qqp-test-mining_ap",
    "sts-test_spearman_cosine",
    "sick-r-test_spearman_cosine",
)


def row(run: Path) -> str:
    metrics = json.loads((run / "metrics.json").read_text())
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    cells = []
    for key in HEADLINES:
        if key in metrics:
            cells.append(f"{key}: {metrics['initial/' + key]:.4f} -> **{metrics[key]:.4f}**")
    minutes = metrics["train/seconds"] / 60
    # runs from before 0.1's rename say pairs_per_second
    speed = metrics.get("train/examples_per_second", metrics.get("train/pairs_per_second", float("nan")))
    loss = " + ".join([recipe["loss"], *(task["loss"] for task in recipe.get("tasks") or [])])
    return (
        f"| `{run.name}` | {loss} | {'<br>'.join(cells)} | {metrics['train/steps']} steps, "
        f"{minutes:.1f} min, {speed:.0f} ex/s |"
    )


def main(paths: list[str]) -> None:
    print("| run | loss | test metric: initial -> final | training |")
    print("| --- | --- | --- | --- |")
    for path in paths:
        print(row(Path(path)))


if __name__ == "__main__":
    main(sys.argv[1:])
