"""Evaluators (STS, pair classification, duplicate mining, retrieval, triplets, one-shot), the STS suite,
threshold calibration and plots."""
