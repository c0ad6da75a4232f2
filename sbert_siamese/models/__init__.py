"""The networks: the twin encoder (transformer + pooling + optional dense / normalize), the trainable
comparison heads, the Siamese model that holds one or two towers and a head, and what a saved model is
made of: the sentence-transformers folder format (``st_format``, read through ``safe_load``), the pair
scores a model gives (``scoring``) and the calibrated threshold it carries (``threshold``)."""
