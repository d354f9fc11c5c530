#!/usr/bin/env python3
"""Managed-identity token endpoint for compose.yaml, backed by the developer's Azure CLI login.

Speaks the App Service managed-identity protocol (api-version 2019-08-01) that both qotd
(azure_identity's ManagedIdentityCredential) and the Functions host (Azure.Identity, for the
Service Bus triggers) use when IDENTITY_ENDPOINT and IDENTITY_HEADER are set:

    GET /msi/token?resource=<resource>&api-version=2019-08-01[&client_id=...]
    X-IDENTITY-HEADER: <IDENTITY_HEADER>
    -> {"access_token", "expires_on" (epoch seconds, string), "resource", "token_type"}

Every token is `az account get-access-token --resource <resource>` for whoever ran `az login`;
a requested client_id (the app's user-assigned identity in Azure) is ignored. Local use only:
the port is not published outside the compose network, and the shared header is required.

`--check` exits 0 when the proxy answers (the compose healthcheck).
"""

from __future__ import annotations

import hmac
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("TOKEN_PROXY_PORT", "8081"))
SECRET = os.environ.get("IDENTITY_HEADER", "")


class Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            self._send(200, {"status": "ok"})
            return
        if url.path != "/msi/token":
            self._send(404, {"error": "not_found"})
            return
        if not SECRET or not hmac.compare_digest(self.headers.get("X-IDENTITY-HEADER", ""), SECRET):
            self._send(401, {"error": "invalid_header", "error_description": "X-IDENTITY-HEADER missing or wrong"})
            return
        query = urllib.parse.parse_qs(url.query)
        resource = (query.get("resource") or [""])[0]
        if not resource.startswith("https://"):
            self._send(400, {"error": "invalid_resource", "error_description": "resource must be an https:// URI"})
            return
        az = subprocess.run(
            ["az", "account", "get-access-token", "--resource", resource, "--output", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if az.returncode != 0:
            message = az.stderr.strip().splitlines()[-1:] or ["az account get-access-token failed"]
            self._send(500, {"error": "az_cli", "error_description": message[0]})
            return
        token = json.loads(az.stdout)
        expires_on = token.get("expires_on")
        if expires_on is None:  # older CLIs: local time string only
            self._send(500, {"error": "az_cli", "error_description": "the Azure CLI gave no expires_on; update it"})
            return
        self._send(
            200,
            {
                "access_token": token["accessToken"],
                "expires_on": str(int(expires_on)),
                "resource": resource,
                "token_type": token.get("tokenType", "Bearer"),
            },
        )

    def log_message(self, fmt: str, *args) -> None:  # never log tokens; requests only
        sys.stderr.write("token-proxy: " + (fmt % args) + "\n")


def main() -> int:
    if "--check" in sys.argv[1:]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=3) as r:
                return 0 if r.status == 200 else 1
        except OSError:
            return 1
    if not SECRET:
        print("token-proxy: IDENTITY_HEADER is not set (run scripts/compose-env.sh)", file=sys.stderr)
        return 1
    print(f"token-proxy: serving Azure CLI tokens on :{PORT}/msi/token", file=sys.stderr)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
