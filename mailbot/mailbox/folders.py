"""The folders: decides whether each folder mailbot uses is there on the server, may be
written, and is the one the server itself means (SPECIAL-USE, RFC 6154).

Exchange calls its Sent folder "Sent Items" and Gmail "[Gmail]/Sent Mail"; a configuration
still saying "Sent" would make mailbot create a folder of its own that no member of staff
sends from, and never see the responses they send from Outlook. So a configured Drafts or
Sent folder is compared with the folder the server flags `\\Drafts` or `\\Sent`, and a
difference is a problem with the line to put in the configuration. Junk and Trash are
listed as the server names them, for the administrator's information; mailbot uses neither.
Only reads: LIST, and a SELECT of each folder that exists (read-write, or refused as
read-only).
"""

from __future__ import annotations

import imaplib
from dataclasses import dataclass

from mailbot.config import Config
from mailbot.mailbox.fetch import Mailbox

# mailbot's use of a folder, the SPECIAL-USE flag the server gives that kind of folder,
# and the key that names it.
SPECIAL_USE = {"sent": "\\Sent", "drafts": "\\Drafts", "junk": "\\Junk", "trash": "\\Trash"}


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


def survey(config: Config, mailbox: Mailbox) -> list[FolderCheck]:
    """Every folder mailbot will use, and whether it can; Junk and Trash as listed."""
    listed = mailbox.client.folder.list()
    names = {folder.name for folder in listed}
    by_flag = {flag: folder.name for folder in listed for flag in folder.flags
               if flag in SPECIAL_USE.values()}
    settings = config.mailbox
    uses = [("inbox", settings.inbox, "[mailbox] inbox"),
            ("processed", settings.processed_folder, "[mailbox] processed_folder"),
            ("quarantine", settings.quarantine_folder, "[mailbox] quarantine_folder"),
            ("sent", settings.sent_folder, "[mailbox] sent_folder")]
    if config.drafts.mailbox_drafts:
        uses.append(("drafts", config.drafts.drafts_folder, "[drafts] drafts_folder"))
    uses.append(("alerts", config.alerts.mailbox_folder, "[alerts] mailbox_folder"))
    checks = [_check(mailbox, use, name, key, names, by_flag) for use, name, key in uses]
    for use in ("junk", "trash"):
        name = by_flag.get(SPECIAL_USE[use])
        checks.append(FolderCheck(use, name, name is not None, None,
                                  note=f"the server's {SPECIAL_USE[use]}; mailbot does not use it"
                                  if name else f"the server flags no folder {SPECIAL_USE[use]}"))
    return checks


def _check(mailbox: Mailbox, use: str, name: str, key: str, names: set[str],
           by_flag: dict[str, str]) -> FolderCheck:
    theirs = by_flag.get(SPECIAL_USE.get(use, ""))
    if theirs is not None and theirs != name:
        return FolderCheck(
            use, name, name in names, None,
            problem=f"the server's {use} folder ({SPECIAL_USE[use]}) is \"{theirs}\": "
                    f"set {key} = \"{theirs}\"",
        )
    if name not in names:
        if use == "inbox":
            return FolderCheck(use, name, False, None,
                               problem=f"no such folder: check {key}")
        return FolderCheck(use, name, False, None, note="mailbot creates it when first needed")
    writable = _writable(mailbox, name)
    return FolderCheck(
        use, name, True, writable,
        note=f"the server's {SPECIAL_USE[use]}" if theirs == name else "",
        problem=None if writable else "mailbot must write here: give the mailbox's "
                                       "account write access to it",
    )


def _writable(mailbox: Mailbox, name: str) -> bool:
    try:
        mailbox.client.folder.set(name, readonly=False)
    except imaplib.IMAP4.readonly:
        return False
    return True
