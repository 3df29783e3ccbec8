"""mailbot: watches a prison's safer custody functional mailbox.

One folder a stage: mailbox (IMAP, IDLE, SMTP) -> ingest (recognise, examine, store,
move) using parsers and triage -> replies (alerts, signposting, drafts, the outbox) ->
casework (deadlines, staff actions, retention) -> reports. db holds the tables, service
the daemon and its health, cli the command line.
"""

__version__ = "0.1.0"
