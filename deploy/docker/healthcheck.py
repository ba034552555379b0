"""Container health check of a mugpos worker: GET /healthz on the worker's web server.

Exit 0 when it answers 2xx within the timeout, 1 otherwise (the Docker HEALTHCHECK contract).
Standard library only, so it works before (and without) importing the project.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def url() -> str:
    host = os.environ.get("MUGPOS_WEB_HOST", "127.0.0.1").strip()
    port = os.environ.get("MUGPOS_WEB_PORT", "6066").strip() or "6066"
    if host in ANY_ADDRESS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main() -> int:
    target = url()
    try:
        with urllib.request.urlopen(target, timeout=float(os.environ.get("HEALTHCHECK_TIMEOUT_S", "4"))) as response:
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {target}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"unhealthy: {target}: HTTP {response.status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
