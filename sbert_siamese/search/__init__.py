"""Nearest-neighbour search over embeddings: exact, k-means clustered and faiss indexes, duplicate pairs and
groups, and corpus search with a model."""
