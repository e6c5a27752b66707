"""`ivr users passwd` and `ivr users token` (make, --list, --revoke): the command-line side of issue 14 row 2."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import main
from ivr.config import load_settings
from ivr.db import make_engine, make_sessionmaker
from ivr.models import ApiToken, User, utcnow
from ivr.services.api_tokens import user_for_token
from ivr.services.users import verify_password
from tests.conftest import run_cli


def _invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _session():
    return make_sessionmaker(make_engine(load_settings().database_url))()


def _with_operator() -> None:
    run_cli("db", "upgrade")
    code, _, _ = run_cli("users", "add", "op_one", "--name", "اپراتور", "--role", "operator",
                         "--password", "a-long-password")
    assert code == 0


def test_cli_users_passwd_prompts_twice_and_never_echoes(env: Path) -> None:
    _with_operator()
    code, out, _ = _invoke("users", "passwd", "op_one", stdin="another password\nanother password\n")
    assert code == 0 and "another password" not in out
    with _session() as session:
        user = session.scalars(select(User).where(User.username == "op_one")).one()
        assert verify_password(user.password_hash, "another password") and user.session_version == 1


def test_cli_users_passwd_mismatch_or_short_password_changes_nothing(env: Path) -> None:
    _with_operator()
    code, _, _ = _invoke("users", "passwd", "op_one", stdin="another password\ndifferent one!!\n")
    assert code != 0
    code, _, err = _invoke("users", "passwd", "op_one", "--stdin", stdin="short\n")
    assert code == 1 and "at least 10 characters" in err
    code, _, err = _invoke("users", "passwd", "nobody", "--stdin", stdin="a long enough one\n")
    assert code == 1 and err == "ivr: error: there is no user named 'nobody'\n"
    with _session() as session:
        user = session.scalars(select(User).where(User.username == "op_one")).one()
        assert verify_password(user.password_hash, "a-long-password")


def test_cli_users_passwd_from_stdin_revokes_the_users_tokens(env: Path) -> None:
    _with_operator()
    code, token, _ = run_cli("users", "token", "op_one")
    assert code == 0 and token.startswith("ivr_")
    code, _, _ = _invoke("users", "passwd", "op_one", "--stdin", stdin="from a script 123\n")
    assert code == 0
    with _session() as session:
        assert user_for_token(session, token.strip(), utcnow()) is None


def test_cli_users_token_list_and_revoke(env: Path) -> None:
    _with_operator()
    _, token, _ = run_cli("users", "token", "op_one", "--name", "reports")
    with _session() as session:
        token_id = session.scalars(select(ApiToken.id)).one()
    code, out, _ = run_cli("users", "token", "--list")
    assert code == 0 and out.startswith(f"{token_id}\top_one\treports\tlive\texpires=")
    code, out, _ = run_cli("users", "token", "--revoke", str(token_id))
    assert code == 0 and out == f"token {token_id} revoked\n"
    assert "\trevoked\t" in run_cli("users", "token", "--list", "op_one")[1]
    code, _, err = run_cli("users", "token", "--revoke", str(token_id))
    assert code == 1 and err == f"ivr: error: no unrevoked token with id {token_id}\n"
    code, _, _ = run_cli("users", "token")
    assert code == 2  # neither a user nor --list / --revoke
