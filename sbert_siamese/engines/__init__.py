"""Where the corpus jobs (``encode``, ``dedup``, ``archive add``) run.

- ``local`` (the default): in this process, on this machine (``engines.local``).
- ``ray``: on a Ray cluster, or a Ray started on this machine (``engines.ray``; ``pip install
  'sbert-siamese[ray]'``). Importing this package never imports Ray.

Both read the same inputs (one file, a directory or a glob) with the same errors, and write the same outputs.
"""

ENGINES = ("local", "ray")
