"""``python -m sbert_siamese ...``: the same as the ``sbert-siamese`` command."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
