"""Users and keys (serving.users): argon2 hashes and no plaintext on disk, roles, scoped keys,
the CLI that makes them, and sign-in by name and password through the real app."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from churn.cli import app as cli
from churn_settings import Settings
from serving.api.deps import ApiKeys
from serving.app import create_app
from serving.errors import AuthError
from serving.server import network_problems
from serving.ui.auth import SESSION_COOKIE, SIGNIN_COOKIE, SessionSigner
from serving.users import Directory, UserError, key_digest, seed_demo_users
from tests.serving.conftest import HEADERS, Deployment, deployment_copy

pytestmark = pytest.mark.xdist_group("serving")

NOW = datetime(2025, 6, 2, 9, tzinfo=UTC)
PASSWORD = "correct horse battery"


def test_a_password_is_stored_only_as_an_argon2id_hash(tmp_path: Path) -> None:
    directory = Directory(tmp_path / "users.db")
    directory.add_user("Alice Moreau", "csm", PASSWORD, NOW)
    raw = (tmp_path / "users.db").read_bytes()
    assert PASSWORD.encode() not in raw
    with sqlite3.connect(tmp_path / "users.db") as con:
        (stored,) = con.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert (tmp_path / "users.db").stat().st_mode & 0o077 == 0  # readable by the owner only


def test_authenticate_takes_the_right_password_and_the_name_in_any_case(tmp_path: Path) -> None:
    directory = Directory(tmp_path / "users.db")
    directory.add_user("Alice Moreau", "csm", PASSWORD, NOW)
    user = directory.authenticate("alice  moreau", PASSWORD)
    assert user is not None and (user.name, user.role) == ("Alice Moreau", "csm")
    assert not user.sees_everyone
    assert directory.authenticate("Alice Moreau", PASSWORD + "!") is None
    assert directory.authenticate("Nobody", PASSWORD) is None
    assert Directory(tmp_path / "absent.db").authenticate("Alice Moreau", PASSWORD) is None


@pytest.mark.parametrize(
    ("name", "role", "password", "says"),
    [
        ("Ann", "boss", PASSWORD, "Unknown role 'boss'"),
        ("Ann", "csm", "short", "use 10 or more"),
        ("   ", "csm", PASSWORD, "1 to 200 characters"),
        ("admin (API key)", "admin", PASSWORD, "may not contain"),
    ],
)
def test_a_user_that_cannot_be_made_says_why(
    tmp_path: Path, name: str, role: str, password: str, says: str
) -> None:
    with pytest.raises(UserError, match=says):
        Directory(tmp_path / "users.db").add_user(name, role, password, NOW)


def test_a_second_user_of_the_same_name_is_refused(tmp_path: Path) -> None:
    directory = Directory(tmp_path / "users.db")
    directory.add_user("Ben Okafor", "csm", PASSWORD, NOW)
    with pytest.raises(UserError, match="exists"):
        directory.add_user("ben okafor", "manager", PASSWORD, NOW)


def test_a_new_password_or_a_removed_user_signs_out_their_sessions(tmp_path: Path) -> None:
    settings = Settings(store_dir=tmp_path, api_keys="some-long-settings-key")
    signer = SessionSigner(settings)
    user = signer.directory.add_user("Ben Okafor", "manager", PASSWORD, NOW)
    cookie = signer.issue_user(user)
    session = signer.read(cookie)
    assert session is not None and (session.name, session.role) == ("Ben Okafor", "manager")
    assert session.sees_everyone
    signer.directory.set_password("Ben Okafor", PASSWORD + " 2", NOW)
    assert signer.read(cookie) is None
    again = signer.issue_user(signer.directory.authenticate("Ben Okafor", PASSWORD + " 2"))  # type: ignore[arg-type]
    assert signer.read(again) is not None
    signer.directory.remove_user("Ben Okafor")
    assert signer.read(again) is None


def test_a_key_is_stored_as_its_digest_and_checked_with_its_scopes(tmp_path: Path) -> None:
    settings = Settings(store_dir=tmp_path, api_keys="settings-key-long-enough")
    directory = Directory(settings.users_db_path)
    key = directory.add_key("crm-sync", ["score:read", "workflows:read"], NOW)
    assert key.encode() not in settings.users_db_path.read_bytes()
    assert key_digest(key) in directory.stored_keys()
    keys = ApiKeys(settings)
    found = keys.check("client", key)
    assert found.name == "crm-sync"
    assert found.allows("score:read") and not found.allows("workflows:write")
    configured = keys.check("client", "settings-key-long-enough")
    assert configured.name == "settings-1" and configured.allows("admin")
    directory.remove_key("crm-sync")
    keys._looked -= 2  # a second later
    with pytest.raises(AuthError):
        keys.check("client", key)  # re-read when the file changed
    with pytest.raises(UserError, match="Unknown scope"):
        directory.add_key("bad", ["score:write"], NOW)


def test_demo_users_are_reseeded_and_refused_on_a_network(tmp_path: Path) -> None:
    settings = Settings(store_dir=tmp_path, api_keys="k" * 32, ui_session_secret="s" * 40)
    directory = Directory(settings.users_db_path)
    directory.add_user("Alice Moreau", "csm", PASSWORD, NOW)  # a real user: left alone
    first = seed_demo_users(directory, ["Alice Moreau", "Ben Okafor"], NOW)
    assert [(n, r) for n, r, _ in first] == [("Morgan Lee", "manager"), ("Ben Okafor", "csm")]
    second = seed_demo_users(directory, ["Alice Moreau", "Ben Okafor"], NOW)
    assert first[1][2] != second[1][2]
    assert directory.authenticate("Ben Okafor", second[1][2]) is not None
    assert directory.authenticate("Ben Okafor", first[1][2]) is None
    assert directory.authenticate("Alice Moreau", PASSWORD) is not None
    problems = network_problems(settings, "0.0.0.0")
    assert any("demo users" in p and "Ben Okafor" in p for p in problems)
    assert network_problems(settings, "127.0.0.1") == []


def test_the_cli_adds_and_lists_users_and_keys(tmp_path: Path) -> None:
    env = {"CHURN_STORE_DIR": str(tmp_path)}
    runner = CliRunner()
    added = runner.invoke(
        cli, ["users", "add", "--name", "Chloé Martin", "--role", "manager"],
        input=f"{PASSWORD}\n", env=env,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    short = runner.invoke(cli, ["users", "add", "--name", "X Y"], input="abc\n", env=env)
    assert short.exit_code == 1 and "10 or more" in short.output
    listed = runner.invoke(cli, ["users", "list"], env=env)
    assert "Chloé Martin" in listed.output and "manager" in listed.output
    assert PASSWORD not in listed.output and "argon2" not in listed.output
    directory = Directory(tmp_path / "users.db")
    assert directory.authenticate("Chloé Martin", PASSWORD) is not None
    made = runner.invoke(
        cli, ["keys", "add", "--name", "crm", "--scope", "score:read", "--scope", "workflows:read"],
        env=env,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert directory.stored_keys()[key_digest(key)].scopes == {"score:read", "workflows:read"}
    keys = runner.invoke(cli, ["keys", "list"], env=env)
    assert "crm" in keys.output and key not in keys.output
    wrong = runner.invoke(cli, ["keys", "add", "--name", "x", "--scope", "everything"], env=env)
    assert wrong.exit_code == 1 and "Unknown scope(s) everything" in wrong.output


def signin_token(client: TestClient) -> str:
    assert client.get("/ui/signin").status_code == 200
    return str(client.cookies.get(SIGNIN_COOKIE))


def test_signing_in_by_name_and_password_and_scoped_keys_on_the_real_app(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    directory = Directory(settings.users_db_path)
    directory.add_user("Alice Moreau", "csm", PASSWORD, NOW)
    reader = directory.add_key("reports", ["workflows:read"], NOW)
    scorer = directory.add_key("crm", ["score:read"], NOW)
    cid = str(deployment.snapshot["customer_id"].iloc[0])
    with TestClient(create_app(settings), follow_redirects=False) as client:
        token = signin_token(client)
        wrong = client.post("/ui/signin", data={"name": "Alice Moreau", "password": "nope",
                                                "csrf": token})  # fmt: skip
        assert wrong.status_code == 401 and "wrong password" in wrong.text
        token = signin_token(client)
        ok = client.post("/ui/signin", data={"name": "alice moreau", "password": PASSWORD,
                                             "csrf": token, "next": "/ui/"})  # fmt: skip
        assert ok.status_code == 303
        session = SessionSigner(settings).read(client.cookies.get(SESSION_COOKIE))
        assert session is not None and (session.name, session.role) == ("Alice Moreau", "csm")
        mine = client.get("/ui/")
        assert mine.status_code == 200 and "My customers (Alice Moreau)" in mine.text
        assert 'aria-label="CSM owner"' not in mine.text  # a CSM's list is their book
        assert "My tasks" in mine.text and "/ui/workflows/closed-loop" in mine.text

        scored = client.post("/score", json={"customer_id": cid}, headers={"X-API-Key": scorer})
        assert scored.status_code == 200
        refused = client.post("/score", json={"customer_id": cid}, headers={"X-API-Key": reader})
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
        assert "lacks the scope 'score:read'" in refused.json()["message"]
        assert client.get("/workflows/tasks", headers={"X-API-Key": reader}).status_code == 200
        tasks = client.get("/workflows/tasks", headers={"X-API-Key": scorer})
        assert tasks.status_code == 403 and "'workflows:read'" in tasks.json()["message"]
        write = client.post("/workflows/tasks/1/close", headers={"X-API-Key": reader},
                            json={"by": "x", "outcome": "y"})  # fmt: skip
        assert write.status_code == 403 and "'workflows:write'" in write.json()["message"]
        reload = client.post("/admin/reload", headers={"X-API-Key": scorer})
        assert reload.status_code == 403 and "'admin'" in reload.json()["message"]
        assert client.post("/score", json={"customer_id": cid}, headers=HEADERS).status_code == 200


def test_seed_demo_makes_a_manager_and_the_csms_of_most_open_tasks(tmp_path: Path) -> None:
    from serving.workflows.ledger import Ledger

    env = {"CHURN_STORE_DIR": str(tmp_path)}
    runner = CliRunner()
    none = runner.invoke(cli, ["users", "seed-demo"], env=env)
    assert none.exit_code == 1 and "churn score-all" in none.output
    ledger = Ledger(tmp_path / "workflows.db")
    with ledger.connect() as con:
        for i, owner in enumerate(["Ben Okafor"] * 3 + ["Alice Moreau"] * 2 + ["Grace Liu"]):
            con.execute(
                "INSERT INTO tasks (customer_id, title, owner, due_at, created_at) "
                "VALUES (?, 'Call', ?, '2025-06-03T06:00:00+00:00', '2025-06-02T06:00:00+00:00')",
                (f"C{i}", owner),
            )
    seeded = runner.invoke(cli, ["users", "seed-demo", "--csms", "2"], env=env)
    assert seeded.exit_code == 0, seeded.output
    users = {u.name: u.role for u in Directory(tmp_path / "users.db").users()}
    assert users == {"Morgan Lee": "manager", "Ben Okafor": "csm", "Alice Moreau": "csm"}
    assert "password" in seeded.output and "Ben Okafor" in seeded.output
