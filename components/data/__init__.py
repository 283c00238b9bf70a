"""Data: sources to ingest, image shards, the manifest schema, atomic output."""
