"""The folders: decides whether each folder mailbot uses is there on the server, may be
written, and is the one the server itself means (SPECIAL-USE, RFC 6154).

Exchange calls its Sent folder "Sent Items" and Gmail "[Gmail]/Sent Mail". Left out of
the configuration, Drafts and Sent are the folders the server flags `\\Drafts` and
`\\Sent` (the mailbox stage finds them: `Mailbox.folder_for`), and the survey says so. A
configured name always wins, but one that differs from the server's own folder is a
problem: staff send from the server's Sent, so mailbot would never see their responses.
Junk and Trash are listed as the server names them, for the administrator's information;
mailbot uses neither. Only reads: LIST, and a SELECT of each folder that exists
(read-write, or refused as read-only); `mailbox check` creates the folders mailbot would
create on its first pass before it surveys them.
"""

from __future__ import annotations

import imaplib
from collections.abc import Collection
from dataclasses import dataclass

from mailbot.config import Config
from mailbot.mailbox.fetch import SPECIAL_USE, Mailbox
from mailbot.mailbox.mail_client import drafts_folder


def folders_to_create(config: Config, mailbox: Mailbox) -> list[str]:
    """The folders mailbot creates when missing: Processed, Quarantine, Sent, Drafts (when
    drafts go in the mailbox) and the alerts folder."""
    settings = config.mailbox
    names = [settings.processed_folder, settings.quarantine_folder, mailbox.sent_folder]
    if config.drafts.mailbox_drafts:
        names.append(drafts_folder(config, mailbox))
    names.append(config.alerts.mailbox_folder)
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class FolderCheck:
    use: str  # inbox, processed, quarantine, sent, drafts, alerts; junk, trash (listed)
    name: str | None  # the folder's name (None: the server has no such folder)
    exists: bool
    writable: bool | None  # None: not looked at (missing, or only listed)
    problem: str | None = None  # what to fix, in one line
    note: str = ""

    def line(self) -> str:
        name = f'"{self.name}"' if self.name is not None else "(none)"
        if not self.exists:
            state = "missing"
        elif self.writable is None:
            state = "exists"
        else:
            state = "exists, writable" if self.writable else "exists, READ-ONLY"
        text = f"{self.use:<11} {name:<24} {state}"
        if self.note:
            text += f"; {self.note}"
        if self.problem:
            text += f"; PROBLEM: {self.problem}"
        return text


def survey(config: Config, mailbox: Mailbox,
           created: Collection[str] = ()) -> list[FolderCheck]:
    """Every folder mailbot will use, and whether it can; Junk and Trash as listed.
    CREATED: the folders made just before (said so in their line)."""
    names = {folder.name for folder in mailbox.client.folder.list()}
    special = mailbox.special_use()
    settings = config.mailbox
    uses = [("inbox", settings.inbox, "[mailbox] inbox"),
            ("processed", settings.processed_folder, "[mailbox] processed_folder"),
            ("quarantine", settings.quarantine_folder, "[mailbox] quarantine_folder"),
            ("sent", settings.sent_folder, "[mailbox] sent_folder")]
    if config.drafts.mailbox_drafts:
        uses.append(("drafts", config.drafts.drafts_folder, "[drafts] drafts_folder"))
    uses.append(("alerts", config.alerts.mailbox_folder, "[alerts] mailbox_folder"))
    checks = [_check(mailbox, use, configured, key, names, special, created)
              for use, configured, key in uses]
    for use in ("junk", "trash"):
        name = special.get(use)
        checks.append(FolderCheck(use, name, name is not None, None,
                                  note=f"the server's {SPECIAL_USE[use]}; mailbot does not use it"
                                  if name else f"the server flags no folder {SPECIAL_USE[use]}"))
    return checks


def _check(mailbox: Mailbox, use: str, configured: str | None, key: str, names: set[str],
           special: dict[str, str], created: Collection[str]) -> FolderCheck:
    theirs = special.get(use) if use in SPECIAL_USE else None
    # Only Drafts and Sent may be left out of the configuration.
    name = mailbox.folder_for(use, configured) if use in SPECIAL_USE else str(configured)
    if configured and theirs is not None and theirs != configured:
        return FolderCheck(
            use, name, name in names, None,
            problem=f"the server's {use} folder ({SPECIAL_USE[use]}) is \"{theirs}\", not "
                    f"the configured \"{configured}\": leave {key} out to use it (or set "
                    f"{key} = \"{theirs}\")",
        )
    if use in SPECIAL_USE and not configured:
        note = (f"the server's {SPECIAL_USE[use]}, found by SPECIAL-USE ({key} not set)"
                if theirs is not None
                else f"the server flags no folder {SPECIAL_USE[use]}, so the plain name "
                     f"({key} not set)")
    else:
        note = f"the server's {SPECIAL_USE[use]}" if theirs is not None else ""
    if name in created:
        note = "; ".join(filter(None, ["created by this check", note]))
    if name not in names:
        if use == "inbox":
            return FolderCheck(use, name, False, None,
                               problem=f"no such folder: check {key}")
        return FolderCheck(use, name, False, None,
                           note="; ".join(filter(None, [note, "mailbot creates it when first "
                                                               "needed"])))
    writable = _writable(mailbox, name)
    return FolderCheck(
        use, name, True, writable, note=note,
        problem=None if writable else "mailbot must write here: give the mailbox's "
                                       "account write access to it",
    )


def _writable(mailbox: Mailbox, name: str) -> bool:
    try:
        mailbox.client.folder.set(name, readonly=False)
    except imaplib.IMAP4.readonly:
        return False
    return True
