"""Casework: deadlines, persistent contact, what staff did, retention and the audit trail."""
