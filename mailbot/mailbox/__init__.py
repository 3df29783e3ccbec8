"""The mailbox: IMAP fetch and moves, IDLE, SMTP, and the Drafts and Sent folders."""
