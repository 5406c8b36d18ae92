"""Schemathesis hooks for `cargo xtask fuzz`: log in as the seeded admin and send its token.

`cargo xtask fuzz` loads this file through SCHEMATHESIS_HOOKS and passes the server and the
login in CLINICFLOW_FUZZ_BASE_URL, CLINICFLOW_FUZZ_EMAIL and CLINICFLOW_FUZZ_PASSWORD. The
server it starts issues day-long access tokens, so one login serves the whole run.
"""

import os

import requests
import schemathesis

BASE_URL = os.environ["CLINICFLOW_FUZZ_BASE_URL"]
EMAIL = os.environ["CLINICFLOW_FUZZ_EMAIL"]
PASSWORD = os.environ["CLINICFLOW_FUZZ_PASSWORD"]


# No retry on 401: a 401 is what the fuzzer should see for a broken token it generated, and a
# re-login per such case would only slow the run down.
@schemathesis.auth(refresh_interval=3600, retry_on=[])
class AdminToken:
    """The seeded admin's bearer token."""

    def get(self, case, context):
        response = requests.post(
            f"{BASE_URL}/api/v1/auth/login",
            json={"email": EMAIL, "password": PASSWORD},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
