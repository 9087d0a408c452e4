"""Feedback POSTs under load (issue 12 "Feedback under load"): at most one per worker is in the
worker's threads; the others wait on the event loop, so a hook call always finds a thread."""

from __future__ import annotations

import threading

def test_feedback_posts_take_one_thread_and_hook_calls_pass_them() -> None:
    """Four feedback POSTs at once in a worker of two threads: one is in the app, three wait
    without a thread, and a hook call sent meanwhile is answered (it found a thread free)."""
    import asyncio

    from cds_service.asgi import BufferedWsgi

    release = threading.Event()
    inside, most = [0], [0]
    lock = threading.Lock()

    def app(environ, start_response):
        if environ["PATH_INFO"].endswith("/feedback"):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(10)
            with lock:
                inside[0] -= 1
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    asgi = BufferedWsgi(app, max_body_bytes=1 << 20, threads=2)

    async def post(path: str) -> int:
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message):
            sent.append(message)
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"content-type", b"application/json")], "http_version": "1.1",
                 "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": ""}
        await asgi(scope, receive, send)
        return next(m["status"] for m in sent if m["type"] == "http.response.start")

    async def scenario() -> None:
        feedback = [asyncio.create_task(post("/cds-services/x/feedback")) for _ in range(4)]
        await asyncio.sleep(0.3)
        assert await asyncio.wait_for(post("/cds-services/x"), 5) == 200   # not stuck behind feedback
        assert inside[0] == 1
        release.set()
        assert await asyncio.wait_for(asyncio.gather(*feedback), 10) == [200] * 4

    asyncio.run(scenario())
    assert most[0] == 1
