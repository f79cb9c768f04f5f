"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 serving scripted /v1/chat/completions answers.

Each scripted reply is one of: {"content": str}, {"tool": name, "arguments": str}, {"refusal": str},
{"sleep": seconds, ...} (delay first), {"status": int}. Requests are kept (JSON bodies and headers) so
tests can check what the client sent.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(n) or b"{}")
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                reply = outer.replies.pop(0) if outer.replies else {"status": 500}
                if "sleep" in reply:
                    time.sleep(reply["sleep"])
                if "status" in reply:
                    self.send_response(reply["status"])
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": "scripted error"}}).encode())
                    return
                message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
                if "tool" in reply:
                    message["content"] = None
                    message["tool_calls"] = [{"id": f"call_{len(outer.requests)}", "type": "function",
                                              "function": {"name": reply["tool"], "arguments": reply["arguments"]}}]
                if "refusal" in reply:
                    message["content"] = None
                    message["refusal"] = reply["refusal"]
                data = {
                    "id": f"chatcmpl-{len(outer.requests)}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": "tool_calls" if "tool" in reply else "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                }
                raw = json.dumps(data).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
