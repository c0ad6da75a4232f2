"""Writing files safely (stage then rename) and streaming embeddings to sharded files."""
