"""mailbot: watches a prison's safer custody functional mailbox.

The pipeline, one module a stage: fetch (IMAP) -> recognise (what is this message?)
-> parse (portal form or direct email into a concern) -> store (the communications
log) -> move (Processed or Quarantine).
"""

__version__ = "0.1.0"
