"""A FastAPI app that sends calls from its endpoints without blocking its event loop.

    pip install 'dispatch[gateway]'          # FastAPI and uvicorn
    python examples/receivers/plain_python.py &
    dramatiq dispatch.tasks &
    uvicorn examples.fastapi_sender:app --port 8001
    curl 'http://127.0.0.1:8001/multiply?x=6&y=7'        # -> {"id": "...", "result": 42}

``await URL(...).asend(...)`` validates the call here and publishes it
with the same confirmed publish as ``send()``, run in a thread;
``await res.aget()`` waits on Redis with the asyncio client.  Other
requests are served meanwhile.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, HTTPException

from dispatch import URL, CallResult, DispatchError

RECEIVER = os.environ.get("RECEIVER_URL", "http://127.0.0.1:8000")

app = FastAPI(title="dispatch from asyncio")


@app.get("/multiply")
async def multiply(x: int, y: int) -> dict[str, Any]:
    """Send a call, wait for its outcome, answer it."""
    res = await URL(f"{RECEIVER}/multiply").asend(x=x, y=y)
    try:
        return {"id": res.message_id, "result": await res.aget(timeout=10)}
    except DispatchError as exc:
        raise HTTPException(502, f"{type(exc).__name__}: {exc}") from None


@app.post("/reminders", status_code=202)
async def remind(seconds: float, x: int, y: int) -> dict[str, str]:
    """Send a call for later; the id cancels it (``DELETE /reminders/{id}``)."""
    try:
        res = await URL(f"{RECEIVER}/multiply").asend_in(seconds, x=x, y=y)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": res.message_id}


@app.delete("/reminders/{call_id}")
async def cancel(call_id: str) -> dict[str, bool]:
    return {"cancelled": await CallResult.from_id(call_id).acancel()}
