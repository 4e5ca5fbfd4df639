"""Tools beside the library: scripts that make test data and retrain shipped models.

Nothing in the library imports this package; ``fewshot.zeroshot.micro_clip`` keeps the old
names and ``python -m`` entry point by forwarding to it lazily.
"""
