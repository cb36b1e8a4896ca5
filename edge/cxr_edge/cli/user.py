"""`cxr-edge user`: the web screen's users, managed by an admin on the box's command line."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cxr_edge.cli.common import Failure

config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                             required=True, help="The node's TOML configuration file (its data folder holds the users).")


@click.group("user", short_help="Add or remove the web screen's users, or make an API token.")
def command() -> None:
    """The users of the clinic node's web screen. Both roles review studies and may have API tokens; admins are the
    ones who run these commands on the box (the screen has no user management). Passwords are kept as scrypt
    hashes, API tokens as sha256 hashes only.

    Example: cxr-edge user add nurse.amina --role reviewer --config /etc/cxr-edge/node.toml
    """


def _on_accounts(config_path: Path, action, *args):
    """`action(state, *args)` on the node's database; an AccountError as the command's error."""
    from cxr_edge.web.accounts import AccountError

    state = _state(config_path)
    try:
        return action(state, *args)
    except AccountError as exc:
        raise Failure(str(exc)) from None
    finally:
        state.close()


def _state(config_path: Path):
    from cxr_edge.cli.common import node_config
    from cxr_edge.node.state import State

    return State(node_config(config_path).data)


@command.command("add", short_help="Add a user (the password from a prompt or CXR_EDGE_PASSWORD).")
@click.argument("name")
@click.option("--role", type=click.Choice(["reviewer", "admin"]), required=True, help="What the user may do.")
@click.option("--language", default=None, metavar="CODE",
              help="The language of the user's screen (en, es, fr...) [default: the box's, [web] language]; the "
                   "user can change it on the screen.")
@config_option
def add(name: str, role: str, language: str | None, config_path: Path) -> None:
    """Add user NAME; the password comes from $CXR_EDGE_PASSWORD or, without it, from a prompt (asked twice).

    Example: cxr-edge user add dr.lopez --role reviewer --language es --config /etc/cxr-edge/node.toml
    """
    from cxr_edge.web.accounts import add_user, password_problem

    def checked(password: str) -> str:  # before it is asked a second time
        if problem := password_problem(password, name):
            raise click.UsageError(problem)
        return password

    password = os.environ.get("CXR_EDGE_PASSWORD") or click.prompt("Password", hide_input=True,
                                                                  confirmation_prompt=True, value_proc=checked)
    _on_accounts(config_path, add_user, name, role, password, language)
    click.echo(f"user {name} added ({role}{', ' + language if language else ''})")


@command.command("language", short_help="Set the language of a user's screen.")
@click.argument("name")
@click.argument("code")
@config_option
def language(name: str, code: str, config_path: Path) -> None:
    """Set the language of user NAME's screen to CODE (en, es, fr...), or `box` for the box's own ([web] language).

    Example: cxr-edge user language nurse.amina fr --config /etc/cxr-edge/node.toml
    """
    from cxr_edge.web.accounts import set_language

    _on_accounts(config_path, set_language, name, None if code == "box" else code)
    click.echo(f"user {name}: {code}")


@command.command("remove", short_help="Remove a user, their tokens and sessions.")
@click.argument("name")
@config_option
def remove(name: str, config_path: Path) -> None:
    """Remove user NAME: their API tokens stop working and their sessions end at once (their reviews stay)."""
    from cxr_edge.web.accounts import remove_user

    _on_accounts(config_path, remove_user, name)
    click.echo(f"user {name} removed")


@command.command("token", short_help="Print a new, named API bearer token for a user, once.")
@click.argument("name")
@click.option("--name", "label", default="", metavar="TOKEN_NAME",
              help="What the token is for, to list and revoke it by (letters, digits, '.', '-', '_') "
                   "[default: token-DATETIME].")
@click.option("--days", type=click.FloatRange(min=0, min_open=True, max=3650), default=90, show_default=True,
              help="Days until the token stops working.")
@config_option
def token(name: str, label: str, days: float, config_path: Path) -> None:
    """Print a new bearer token for GET /api/results as NAME. It is shown once: only its hash is kept; it stops
    working after --days, or when revoked.

    Example: cxr-edge user token amina --name dhis2-export --days 30 --config /etc/cxr-edge/node.toml
    """
    from cxr_edge.web.accounts import new_token

    click.echo(_on_accounts(config_path, new_token, name, label, days))


@command.command("tokens", short_help="List a user's API tokens: name, made, expires.")
@click.argument("name")
@config_option
def list_tokens(name: str, config_path: Path) -> None:
    """List user NAME's API tokens (their names and dates; never the tokens, which are not kept).

    Example: cxr-edge user tokens amina --config /etc/cxr-edge/node.toml
    """
    import time as clock

    from cxr_edge.web.accounts import tokens

    rows = _on_accounts(config_path, tokens, name)
    day = lambda seconds: clock.strftime("%Y-%m-%d %H:%M", clock.localtime(seconds))  # noqa: E731
    for row in rows:
        state = "expired" if row["expired"] else "valid"
        click.echo(f"{row['name']}  made {day(row['created'])}  expires {day(row['expires'])}  {state}")
    if not rows:
        click.echo(f"user {name} has no API token")


@command.command("revoke", short_help="Revoke one of a user's API tokens, by its name.")
@click.argument("name")
@click.argument("token_name")
@config_option
def revoke(name: str, token_name: str, config_path: Path) -> None:
    """Revoke user NAME's API token TOKEN_NAME: it stops working at once; their other tokens go on.

    Example: cxr-edge user revoke amina dhis2-export --config /etc/cxr-edge/node.toml
    """
    from cxr_edge.web.accounts import revoke_token

    _on_accounts(config_path, revoke_token, name, token_name)
    click.echo(f"token {token_name} of user {name} revoked")
