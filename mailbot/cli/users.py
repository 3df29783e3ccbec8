"""`mailbot users`: the staff console's local accounts (add, disable, reset, role, list), and
`mailbot web`, which serves the console on `[web] listen`."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import click

from mailbot.cli.context import Context, pass_context


# Who the command line records as having changed an account: the shell's user.
def _operator() -> str:
    try:
        return f"{getpass.getuser()} (command line)"
    except (KeyError, OSError):
        return f"uid {os.getuid()} (command line)"


def _password(password_file: Path | None) -> str:
    if password_file is not None:
        return password_file.read_text(encoding="utf-8").rstrip("\r\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)


@click.group("users")
def users_group() -> None:
    """who may sign in to the web console"""


@users_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(("officer", "manager", "admin")))
@click.option("--password-file", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="read the password from this file (else it is asked for)")
@pass_context
def add(context: Context, name: str, role: str, password_file: Path | None) -> int:
    """add a member of staff"""
    from mailbot.web import accounts

    password = _password(password_file)
    with context.sessions() as session:
        accounts.add(session, name, role, password, by=_operator())
        session.commit()
    print(f"user {name} added ({role})")
    return 0


@users_group.command("disable")
@click.argument("name")
@pass_context
def disable(context: Context, name: str) -> int:
    """stop someone signing in (their sessions end at their next request)"""
    from mailbot.web import accounts

    with context.sessions() as session:
        accounts.disable(session, name, by=_operator())
        session.commit()
    print(f"user {name} disabled")
    return 0


@users_group.command("reset")
@click.argument("name")
@click.option("--password-file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@pass_context
def reset(context: Context, name: str, password_file: Path | None) -> int:
    """a new password (also enables and unlocks the account, and ends its sessions)"""
    from mailbot.web import accounts

    password = _password(password_file)
    with context.sessions() as session:
        accounts.reset(session, name, password, by=_operator())
        session.commit()
    print(f"user {name}: new password set")
    return 0


@users_group.command("role")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(("officer", "manager", "admin")))
@pass_context
def role(context: Context, name: str, role: str) -> int:
    """give someone another role"""
    from mailbot.web import accounts

    with context.sessions() as session:
        accounts.change_role(session, name, role, by=_operator())
        session.commit()
    print(f"user {name} is now {role}")
    return 0


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def listing(context: Context, as_json: bool) -> int:
    """everyone with an account"""
    from mailbot.db.models import utcnow
    from mailbot.web import accounts

    now = utcnow()
    with context.sessions() as session:
        rows = [{
            "name": u.name, "role": u.role,
            "state": ("disabled" if u.disabled_at else
                      "locked" if u.locked_until and u.locked_until > now else "active"),
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            "source": u.source,  # local, or entra ([web.oidc]: docs/entra-id.md)
        } for u in accounts.listing(session)]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:30} {row['role']:8} {row['state']:9} "
              f"last signed in {(row['last_login_at'] or 'never')[:16]}")
    return 0


@click.command("web")
@pass_context
def web(context: Context) -> int:
    """serve the staff web console on [web] listen"""
    from mailbot.web.app import serve

    return serve(context.config, context.sessions)


COMMANDS = (users_group, web)
