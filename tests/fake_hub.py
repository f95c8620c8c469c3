"""A Hugging Face Hub on 127.0.0.1 serving local model folders (HF_ENDPOINT points at it), so the
real huggingface_hub client lists, plans and downloads through real HTTP without the internet.
It answers the four requests snapshot_download makes — repo info, file tree, HEAD and GET of a
file — and records every file body it sent (`served`), so tests can tell what was downloaded."""
from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from tests.hub_cache import commit_of


class FakeHub:
    def __init__(self, repos: dict[str, Path]):
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.served: list[str] = []          # "owner/name/file" of every GET with a body
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.answer(self, body=True)

            def do_HEAD(self):
                hub.answer(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo: str) -> dict[str, Path]:
        root = self.repos[repo]
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def answer(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        parts = unquote(urlparse(request.path).path).strip("/").split("/")
        if parts[:2] == ["api", "models"]:
            repo, rest = "/".join(parts[2:4]), parts[4:]
            if repo not in self.repos:
                return self.send(request, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})
            if rest[:1] == ["revision"]:
                info = {"id": repo, "sha": commit_of(repo), "siblings": [{"rfilename": f} for f in self.files(repo)]}
                return self.send(request, 200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            if rest[:1] == ["tree"]:
                tree = [{"type": "file", "path": f, "size": p.stat().st_size,
                         "oid": hashlib.sha1(p.read_bytes()).hexdigest()} for f, p in self.files(repo).items()]
                return self.send(request, 200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
        repo = "/".join(parts[:2])
        if len(parts) > 4 and parts[2] == "resolve" and repo in self.repos:
            path = self.files(repo).get("/".join(parts[4:]))
            if path is not None:
                data = path.read_bytes()
                if body:
                    self.served.append(f"{repo}/{'/'.join(parts[4:])}")
                headers = {"X-Repo-Commit": commit_of(repo), "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
                return self.send(request, 200, data, headers, body)
            return self.send(request, 404, b"", {"X-Error-Code": "EntryNotFound"}, body)
        self.send(request, 404, b"", {"X-Error-Code": "RepoNotFound"}, body)

    @staticmethod
    def send(request, code: int, data: bytes, headers: dict, body: bool = True) -> None:
        request.send_response(code)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if body:
            request.wfile.write(data)
