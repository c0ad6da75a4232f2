"""The public names: what the README shows is importable, and ``import sbert_siamese`` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import sbert_siamese

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sbert_siamese.__all__)
def test_every_public_name_resolves(name):
    assert getattr(sbert_siamese, name) is not None
    assert name in dir(sbert_siamese)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        sbert_siamese.nothing_here  # noqa: B018


def readme_imports() -> list[str]:
    """Every ``from sbert_siamese... import ...`` line in the README's Python examples."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return sorted(
        {line.strip() for b in blocks for line in b.splitlines() if line.startswith("from sbert_siamese")}
    )


def test_every_import_the_readme_shows_works():
    lines = readme_imports()
    assert len(lines) >= 3
    result = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_importing_the_package_does_not_load_training_or_search_libraries():
    code = (
        "import sys, sbert_siamese\n"
        "heavy = [m for m in ('accelerate', 'faiss', 'matplotlib', 'onnxruntime') if m in sys.modules]\n"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
