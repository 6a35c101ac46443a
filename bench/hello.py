"""The hello-world limit: one GET route returning a small JSON object, nothing else.

Served through ``civio.core.serving.serve_app``, the very function ``civio serve`` uses (same
uvicorn server, loop, HTTP parser and options), so its requests/s are what this machine's
HTTP stack can do with civio's server configuration and no civio code at all.

    .venv/bin/python bench/hello.py --port 8001
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

from civio.core.serving import serve_app

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    serve_app(app, args.host, args.port)


if __name__ == "__main__":
    main()
