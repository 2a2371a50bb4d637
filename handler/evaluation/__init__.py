"""Evaluation tooling: datasets, metrics, reports, calibration, trainable heads."""
