"""The networks: the twin encoder (transformer + pooling + optional dense / normalize), the trainable
comparison heads, the Siamese model that holds one or two towers and a head, and the sentence-transformers
folder format they are saved in."""
