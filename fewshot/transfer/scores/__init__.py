"""Transferability scores: rank pretrained encoders on a target before fine-tuning (issue #18)."""
