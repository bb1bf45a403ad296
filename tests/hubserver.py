"""A minimal Hugging Face Hub on localhost: the resolve endpoint that hf_hub_download uses.

Serves HEAD and GET /{repo_id}/resolve/{revision}/{filename} with the Hub's headers
(X-Repo-Commit, ETag/X-Linked-Etag, X-Error-Code), and records every request's headers.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hub:
    def __init__(self):
        self.repos: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo_id: str, commit: str, files: dict[str, bytes], token: str | None = None,
            served: dict[str, bytes] | None = None) -> None:
        """`served`: bodies sent instead of the files' (a corrupted transfer); headers still describe `files`."""
        self.repos[repo_id] = {"commit": commit, "files": files, "token": token, "served": served or {}}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _error(self, status: int, code: str) -> None:
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _resolve(self, with_body: bool) -> None:
                hub.requests.append({"path": self.path, "headers": dict(self.headers)})
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error(404, "RepoNotFound")
                repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(401, "RepoNotFound")
                if repo["token"] and self.headers.get("Authorization") != f"Bearer {repo['token']}":
                    return self._error(401, "GatedRepo")
                if revision not in (repo["commit"], "main"):
                    return self._error(404, "RevisionNotFound")
                if filename not in repo["files"]:
                    return self._error(404, "EntryNotFound")
                body = repo["files"][filename]
                etag = hashlib.sha256(body).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", repo["commit"])
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(body)))
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if with_body:
                    self.wfile.write(repo["served"].get(filename, body))

            def do_HEAD(self):
                self._resolve(False)

            def do_GET(self):
                self._resolve(True)

        return Handler
