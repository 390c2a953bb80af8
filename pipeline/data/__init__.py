"""Data: synthetic generator, CSV parsing and validation, prepared shards."""
