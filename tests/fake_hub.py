"""A protocol-faithful fake of the Hugging Face Hub's file-download endpoint, on loopback.

``huggingface_hub.hf_hub_download`` (and so every loader in ``internal_rl_gym.hub``) talks to
``{endpoint}/{repo_id}/resolve/{revision}/{filename}``: a ``HEAD`` for the metadata, then a
``GET`` for the content. This server implements exactly that, with the headers the client reads:

* ``X-Repo-Commit``: the commit sha the revision resolves to (it names the snapshot folder);
* ``ETag``: names the cached blob. Like the real Hub, LFS-type files (``*.safetensors``,
  ``*.zip``, ``*.bin``) get the sha256 of their content and other files the git blob sha1;
* ``Content-Length``;
* errors as a 404 with ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``.

A repository holds commits (``{sha: {filename: bytes}}``) and refs (``{"main": sha}``); a
revision is a ref name or a full 40-hex commit sha. Nothing else of the Hub API is faked:
uploads are not (see ``tests/test_hub.py``). It listens on ``127.0.0.1`` only.

    hub = FakeHub().start()
    sha = hub.add_repo("org/tiny", tmp_path / "ckpt")      # a folder, or {name: bytes}
    load_base_model("org/tiny", endpoint=hub.url, cache_dir=tmp_path / "cache")
    hub.stop()
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".zip", ".bin", ".pt", ".pth", ".npz")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


def etag_of(filename: str, body: bytes) -> str:
    """The ETag the Hub serves: sha256 for LFS files, the git blob sha1 otherwise."""
    if filename.endswith(LFS_SUFFIXES):
        return hashlib.sha256(body).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()


class FakeHub:
    """A loopback HTTP server serving ``/{repo_id}/resolve/{revision}/{filename}``.

    ``requests`` records ``(method, path)`` of every request, so a test can assert that an
    offline load made none.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- content -----------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        files: str | Path | Mapping[str, bytes],
        commit: str | None = None,
        branch: str = "main",
    ) -> str:
        """Add a commit to ``repo_id`` (created if new) holding ``files`` (a folder, or a
        ``{path: bytes}`` mapping), point ``branch`` at it, and return its 40-hex sha."""
        if not isinstance(files, Mapping):
            root = Path(files)
            files = {
                p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file()
            }
        files = dict(files)
        with self._lock:
            repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
            if commit is None:
                h = hashlib.sha1(f"{repo_id}\0{len(repo['commits'])}".encode())
                for name in sorted(files):
                    h.update(name.encode() + b"\0" + files[name])
                commit = h.hexdigest()
            if not _SHA.match(commit):
                raise ValueError(f"a commit sha has 40 lowercase hex digits, got {commit!r}")
            repo["commits"][commit] = files
            repo["refs"][branch] = commit
        return commit

    def _lookup(self, repo_id: str, revision: str, filename: str):
        """(status, headers, body) for one resolve request."""
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
        commit = repo["refs"].get(revision)
        if commit is None and revision in repo["commits"]:
            commit = revision
        if commit is None:
            return (
                404,
                {"X-Error-Code": "RevisionNotFound"},
                b"Invalid rev id: " + revision.encode(),
            )
        body = repo["commits"][commit].get(filename)
        if body is None:
            headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
            return 404, headers, b"Entry not found"
        headers = {"X-Repo-Commit": commit, "ETag": f'"{etag_of(filename, body)}"'}
        return 200, headers, body

    # --- server ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _reply(self, head: bool) -> None:
                path = urlsplit(self.path).path
                hub.requests.append((self.command, path))
                m = _RESOLVE.match(path)
                if m is None:
                    status, headers, body = 404, {}, b"Not found"
                else:
                    repo_id, revision, filename = (unquote(g) for g in m.groups())
                    with hub._lock:
                        status, headers, body = hub._lookup(repo_id, revision, filename)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self._reply(head=True)

            def do_GET(self) -> None:
                self._reply(head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
