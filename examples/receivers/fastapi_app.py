"""A FastAPI app with dispatch.receiver mounted under /tasks.

    python examples/receivers/fastapi_app.py [PORT]        (default 8000; runs uvicorn)
    uvicorn --app-dir examples/receivers fastapi_app:app   (the same, uvicorn's way)

With DISPATCH_SIGNING_SECRET=whsec_... in the environment, every call to
/tasks/... must be signed with that secret; unsigned ones get HTTP 401.

GET or POST /tasks/multiply?x=6&y=7   ->  {"status": "success", "retval": 42}
GET or POST /tasks/divide?x=1&y=0     ->  {"status": "failure", "reason": "division by zero"}
GET or POST /tasks/echo?any=thing     ->  {"status": "success", "retval": {"any": "thing"}}
"""

import asyncio
import os
import sys

from fastapi import FastAPI

from dispatch.receiver import Receiver


def multiply(x, y):
    return int(x) * int(y)


async def divide(x, y):
    """An async function is awaited on the event loop; a plain one runs in a thread."""
    await asyncio.sleep(0)
    return int(x) / int(y)


def echo(**args):
    return args


app = FastAPI()


@app.get("/health")
def health():
    return {"status": "success", "retval": "ok"}


tasks = Receiver(
    {"/multiply": multiply, "/divide": divide, "/echo": echo},
    secret=os.environ.get("DISPATCH_SIGNING_SECRET") or None,
)
app.mount("/tasks", tasks.as_asgi())


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000, log_level="warning")
