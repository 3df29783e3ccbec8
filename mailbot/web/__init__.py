"""The staff web console (`mailbot web`): the queue against the 72-hour clock, drafts,
consent, casework, quarantine and health in a browser, calling the same casework,
drafts, consent, quarantine and health functions the command line calls."""
