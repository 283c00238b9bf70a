"""Quality measures: distances between image sets, reconstruction scores, lift tables."""
