"""A minimal OpenAI-compatible chat-completions server for the `--engine openai` protocol tests.

It stands in for vLLM where `transformers serve` cannot: it returns `logprobs` / `top_logprobs` (the yes/no
path), takes a `chat_template` field, and can answer 503 a number of times, refuse fields or a system turn,
or stop answering after N requests (a server killed mid-run). Its answer to a request is a pure function of
the request (`reply`), so a test knows what a complete run writes. Standard library only, 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def prompt_of(body: dict[str, Any]) -> str:
    """The text of the request's last user turn."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part["type"] == "text")


def image_of(body: dict[str, Any]) -> Any:
    """The PIL image of the request's data URL (None without one)."""
    from PIL import Image

    for message in body["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part["type"] == "image_url":
                data = part["image_url"]["url"].split(",", 1)[1]
                return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    return None


def echo_reply(body: dict[str, Any]) -> str:
    """The default answer: the prompt, the seed and the image's top-left colour."""
    image = image_of(body)
    pixel = image.getpixel((0, 0)) if image is not None else None
    return f"{prompt_of(body)} | seed={body.get('seed')} | pixel={pixel}"


class FakeServer:
    """Start with `with FakeServer(...) as server:`; `server.url` is the API URL, `server.bodies` the chat
    requests received (in arrival order)."""

    def __init__(
        self,
        reply: Callable[[dict[str, Any]], str] = echo_reply,
        top_logprobs: list[tuple[str, float]] | None = None,
        fail: int = 0,
        fail_status: int = 503,
        refuse_fields: tuple[str, ...] = (),
        refuse_system: bool = False,
        stop_after: int | None = None,
        owned_by: str = "test",
    ) -> None:
        self.owned_by = owned_by
        self.reply, self.top_logprobs = reply, top_logprobs
        self.fail, self.fail_status = fail, fail_status
        self.refuse_fields, self.refuse_system = refuse_fields, refuse_system
        self.stop_after = stop_after
        self.bodies: list[dict[str, Any]] = []
        self.answered = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def kill(self) -> None:
        """Stop listening (new connections are refused)."""
        if self.httpd.socket.fileno() != -1:
            self.httpd.shutdown()
            self.httpd.server_close()

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """(status, JSON) for one chat request; (0, None): drop the connection (a killed server)."""
        with self.lock:
            self.bodies.append(body)
            if self.stop_after is not None and self.answered >= self.stop_after:
                if self.answered == self.stop_after:
                    self.answered += 1
                    threading.Thread(target=self.kill, daemon=True).start()
                return 0, None
            if self.fail > 0:
                self.fail -= 1
                return self.fail_status, {"error": {"message": "busy, try again", "code": self.fail_status}}
            if body["model"] != "served":
                missing = f"The model `{body['model']}` does not exist."
                return 404, {"error": {"message": missing, "code": 404}}
            unexpected = [f for f in self.refuse_fields if f in body]
            if unexpected:
                return 422, {"detail": f"Unexpected fields in the request: {set(unexpected)}"}
            if self.refuse_system and any(m["role"] == "system" for m in body["messages"]):
                return 500, {"detail": "Conversation roles must alternate user/assistant/user/assistant/..."}
            self.answered += 1
        choice: dict[str, Any] = {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": self.reply(body)},
        }
        if body.get("logprobs") and self.top_logprobs is not None:
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in self.top_logprobs]
            choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        return 200, {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def send_json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.rstrip("/").endswith("/models"):
                    self.send_json(
                        200,
                        {
                            "object": "list",
                            "data": [
                                {"id": "served", "object": "model", "created": 0, "owned_by": server.owned_by}
                            ],
                        },
                    )
                else:
                    self.send_json(404, {"detail": "Not Found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                status, payload = server.answer(body)
                if payload is None:  # killed: no answer, the connection dropped
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_json(status, payload)

        return Handler
