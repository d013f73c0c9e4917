"""Optuna studies of many runs: the study folder, storage, search space, workers and status."""
