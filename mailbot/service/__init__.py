"""The service: the daemon that decides when each job runs, and its health."""
