"""The neural networks, one model family per file, with the few functions that use them."""
