"""``sbert-siamese demo``: fine-tune the packaged all-MiniLM-L6-v2 on the bundled sample (data/demo) and
show the before / after numbers."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import add_quiet

# the checkout this package runs from: sbert_siamese/cli/demo.py -> the folder holding recipes/ and data/
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RECIPE = REPO_ROOT / "recipes" / "demo.yaml"
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "demo"

DEMO_PAIRS = [
    ("How do I learn to cook at home?", "What is the best way to teach myself cooking?"),
    ("How do I learn to cook at home?", "How do I fix a noisy laptop fan?"),
    ("A man is playing a guitar on stage.", "A musician performs with his guitar."),
    ("A man is playing a guitar on stage.", "A man is not playing any instrument."),
    ("The city council voted to expand the bus network.", "More bus routes were approved by the council."),
]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo", help="fine-tune all-MiniLM-L6-v2 on the bundled sample and show the effect"
    )
    p.add_argument("--recipe", help="default: recipes/demo.yaml")
    p.add_argument("--data-dir", help="default: data/demo")
    p.add_argument("--output-dir", default="runs/demo", help="where the fine-tuned model goes")
    add_quiet(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Fine-tune the packaged all-MiniLM-L6-v2 on data/demo and show before/after numbers."""
    from ..config import load_recipe
    from ..models.encoder import SiameseEncoder
    from ..training.trainer import train

    recipe = Path(args.recipe) if args.recipe else DEFAULT_RECIPE
    overrides = {"output_dir": args.output_dir, "overwrite": True}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    elif not Path("data/demo").is_dir():  # run from elsewhere than the checkout: its bundled sample
        overrides["data_dir"] = str(DEFAULT_DATA_DIR)
    config = load_recipe(recipe, overrides)
    print(f"1/3 fine-tuning {config.model} on {config.data_dir}")
    print(f"    ({config.epochs} epoch(s), batch {config.batch_size}, loss {config.loss})")
    start = SiameseEncoder.from_pretrained(config.model)
    before = [float(x) for x in pair_cosines(start, DEMO_PAIRS)]
    result = train(config, show_progress_bar=not args.quiet)
    m = result.metrics
    test_file = Path(config.data_dir or ".") / str(config.test_data)
    print(f"\n2/3 test set ({test_file}), Spearman x 100 of cosine similarity vs gold score")
    print(f"    before fine-tuning: {100 * m['initial/sts-test_spearman_cosine']:.2f}")
    print(f"    after fine-tuning:  {100 * m['sts-test_spearman_cosine']:.2f}")
    speed = f"{m['train/examples_per_second']:.1f} pairs/s"
    print(f"    ({m['train/steps']} steps in {m['train/seconds']:.1f} s, {speed})")
    after = pair_cosines(result.encoder, DEMO_PAIRS)
    print("\n3/3 cosine similarity of a few pairs, before -> after")
    for (a, b), x, y in zip(DEMO_PAIRS, before, after, strict=True):
        print(f"    {x:+.3f} -> {y:+.3f}  {a!r} ~ {b!r}")
    print(f"\nThe fine-tuned model is in {result.output_dir} (loadable by SentenceTransformer too).")
    return 0


def pair_cosines(encoder, pairs):
    """Cosine similarity of each (a, b) pair."""
    u = encoder.encode([a for a, _ in pairs], normalize=True)
    v = encoder.encode([b for _, b in pairs], normalize=True)
    return (u * v).sum(axis=1)
