"""Generation: quotas per class and sharded, deterministic sampling from a trained generator."""
