"""Receive Vidu's signed callbacks in FastAPI or Starlette with ``vidu_async.callbacks.verify_request``.

FastAPI is Starlette underneath, so the one handler below serves both::

    from fastapi import FastAPI

    app = FastAPI()
    app.add_api_route("/vidu/callback", receive, methods=["POST"])

Three things matter, whatever the framework:

* verify against the ``callback_url`` **you registered** with the task, not the URL the request
  arrived on (proxies rewrite the Host, the scheme, sometimes the path);
* pass the raw body and the headers as received; answer 401 on a failed check, 400 on an
  unreadable body, 2xx fast otherwise (Vidu retries terminal states that were not acknowledged);
* the body is **not signed**: treat it as a hint and confirm with ``client.get_task(task.id)``.

Running this file plays a genuine, a replayed, a forged and an unreadable callback against the app
(it needs ``starlette`` and ``httpx``; neither is a dependency of vidu-async)::

    python examples/fastapi_callbacks.py
"""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from vidu_async import Task
from vidu_async.callbacks import NonceCache, verify_request
from vidu_async.exceptions import CallbackVerificationError, ResponseValidationError

#: The ``callback_url`` exactly as sent in the create request.
CALLBACK_URL = os.environ.get("VIDU_CALLBACK_URL", "https://hooks.example.com/vidu/callback")
#: The key the tasks were created with: Vidu signs their callbacks with it.
API_KEY = os.environ.get("VIDU_API_KEY", "demo-key")

# One replay cache for the process (with several workers, replays are caught per worker only).
NONCES = NonceCache()


async def confirm(task: Task) -> None:
    """Runs after the response is sent: confirm the hint before acting on it.

    With a long-lived ``ViduClient`` (opened in the app's lifespan) this is
    ``task = await client.get_task(task.id)``; then download, record, notify...
    """
    print(f"callback: task {task.id} says {task.raw_state!r}; confirm with client.get_task({task.id!r})")


async def receive(request: Request) -> JSONResponse:
    """The route: verify, read, acknowledge, and confirm in the background."""
    body = await request.body()
    try:
        task = verify_request(
            method=request.method,
            url=CALLBACK_URL,
            headers=request.headers,
            body=body,
            api_key=API_KEY,
            nonces=NONCES,
        )
    except CallbackVerificationError as exc:
        return JSONResponse({"error": "verification failed", "check": exc.check}, status_code=401)
    except ResponseValidationError:
        return JSONResponse({"error": "unreadable body"}, status_code=400)
    return JSONResponse({}, background=BackgroundTask(confirm, task))


def make_app() -> Starlette:
    """A Starlette app with the callback route at the registered URL's path."""
    path = urlsplit(CALLBACK_URL).path or "/"
    return Starlette(routes=[Route(path, receive, methods=["POST"])])


app = make_app()


def main() -> None:
    """Play four callbacks against the app in-process and print the answers."""
    from starlette.testclient import TestClient

    # The SDK's own signer (the emulator signs with it too) stands in for Vidu here.
    from vidu_async import _signing

    def vidu_headers(key: str = API_KEY) -> dict[str, str]:
        headers = _signing.signed_headers(
            key=key, url=CALLBACK_URL, nonce=str(uuid.uuid4()), date=_signing.http_date()
        )
        return {**headers, "Content-Type": "application/json"}

    target = urlsplit(CALLBACK_URL)
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    body = json.dumps({"id": "demo-task", "state": "success", "credits": 4, "creations": []})
    with TestClient(make_app()) as http:  # its Host is "testserver": only the registered URL counts
        genuine = vidu_headers()
        for label, headers, content in [
            ("genuine", genuine, body),
            ("replayed", genuine, body),
            ("forged", vidu_headers(key="not-the-key"), body),
            ("unreadable", vidu_headers(), "{"),
        ]:
            response = http.post(path, headers=headers, content=content)
            print(f"{label:>10}: {response.status_code} {response.json()}")


if __name__ == "__main__":
    main()
