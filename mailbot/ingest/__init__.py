"""Ingest: every message from the inbox is recognised, examined, stored and moved."""
