"""The local review page for labels and predictions (issue #21)."""
