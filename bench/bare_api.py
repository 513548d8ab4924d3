"""The anchor of ``tunemantra bench api``: a bare sync FastAPI endpoint, no store, no auth, no
middleware; what this machine and server do for a request with no application work."""

from __future__ import annotations

from fastapi import FastAPI


def bare_app() -> FastAPI:
    bare = FastAPI()

    @bare.get("/ok")
    def ok() -> dict[str, str]:
        return {"status": "ok"}

    @bare.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return bare
