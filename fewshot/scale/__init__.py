"""Beyond one process: Ray batch inference, sharded indexes, torch.distributed (issue #20)."""
