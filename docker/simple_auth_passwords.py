"""Write the simple auth manager's passwords file from the environment.

Airflow 3.3's simple auth manager reads its users from ``[core]
simple_auth_manager_users`` (``name:role,...``) and their passwords from the JSON
file ``[core] simple_auth_manager_passwords_file`` (``{"name": "password"}``); a
user missing from the file gets a random password, printed once in the API
server's log. There is no setting that takes a password itself.

The compose file runs this before ``airflow api-server``: for every configured
user it takes the password from ``SIMPLE_AUTH_PASSWORD_<NAME>`` (the name in upper
case, other characters than letters and digits as ``_``) and writes the file,
readable by its owner only. A user without a password stops the start with a
message that names the variable, so no user silently gets a generated password.
Users and file are read with Airflow's own functions, as the API server reads them.
"""

from __future__ import annotations

import json
import os
import re
import sys

PREFIX = "SIMPLE_AUTH_PASSWORD_"


def password_variable(username: str) -> str:
    """``SIMPLE_AUTH_PASSWORD_<NAME>`` of one user."""
    return PREFIX + re.sub(r"[^A-Za-z0-9]", "_", username).upper()


def passwords_from(usernames: list[str], environ: dict[str, str]) -> dict[str, str]:
    """Each user's password from ``environ``; raises SystemExit naming what is missing."""
    missing = [password_variable(u) for u in usernames if not environ.get(password_variable(u))]
    if missing:
        raise SystemExit(
            "simple auth manager: no password for "
            + ", ".join(missing)
            + " (set it in .env; see .env.example)"
        )
    return {u: environ[password_variable(u)] for u in usernames}


def main() -> int:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    users = [user.username for user in SimpleAuthManager.get_users()]
    if not users:
        raise SystemExit("simple auth manager: [core] simple_auth_manager_users is empty")
    passwords = passwords_from(users, dict(os.environ))
    path = SimpleAuthManager.get_generated_password_file()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(passwords) + "\n")
    os.chmod(path, 0o600)
    print(f"simple auth manager: passwords of {', '.join(users)} written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
