"""Evaluation on the test split (PrivateTest): metrics, confusion matrix, TTA, plots."""
