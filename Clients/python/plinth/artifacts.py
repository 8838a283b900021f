"""Run artifacts and model blobs: uploads, downloads and listings, as
`plinth.Client` methods, and the cache that lets an unchanged model file be
registered without sending its bytes again.

`ArtifactsMixin` is mixed into `plinth.Client`, beside `TrackingMixin`
(whose `_run_for` names the run an upload goes to). Files travel in
chunks of `ARTIFACT_CHUNK_BYTES`, well under the daemon's frame limit, and
come back chunk by chunk, checked against the daemon's sha256.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from . import errors
from ._proto.plinth.v1 import tracking_pb2

_TRACKING = "/plinth.v1.Tracking/"
#: Bytes per UploadArtifact chunk: well under the default 16 MiB frame limit.
ARTIFACT_CHUNK_BYTES = 1 << 20
# At most this many file digests and daemon-confirmed digests are remembered per client.
_KNOWN_DIGESTS = 1024
#: How long after its last change a file with sub-second timestamps must
#: stay unchanged before its digest is cached (see Client._file_digest).
_SETTLE_FINE_NS = 50_000_000


class ArtifactsMixin:
    """Artifact and model-blob calls of `plinth.Client` (see the module docstring)."""

    _call: Any  # provided by Client
    _run_for: Any  # provided by TrackingMixin
    _file_digests: Dict[str, Tuple[Tuple[int, ...], str]]  # provided by Client
    _stored_digests: Dict[str, None]  # provided by Client

    def log_artifact(
        self, path: Union[str, "os.PathLike[str]"], artifact_path: Optional[str] = None, run_id: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Upload a file, or a folder's files, to the run's artifacts, under
        `artifact_path` (a folder within the run). Symbolic links are refused."""
        run_id, _ = self._run_for(run_id)
        path = os.fspath(path)
        if os.path.islink(path):
            raise errors.InvalidArgumentError("%s is a symbolic link; artifacts must be regular files" % path)
        prefix = (artifact_path.strip("/") + "/") if artifact_path else ""
        if os.path.isdir(path):
            files: List[Tuple[str, str]] = []
            for folder, dirs, names in os.walk(path, followlinks=False):
                for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                    full = os.path.join(folder, name)
                    if os.path.islink(full):
                        raise errors.InvalidArgumentError("%s is a symbolic link; artifacts must be regular files" % full)
                    files.append((full, prefix + os.path.relpath(full, path).replace(os.sep, "/")))
        else:
            files = [(path, prefix + os.path.basename(path))]
        return [self._upload(run_id, local, remote) for local, remote in files]

    def _upload(self, run_id: str, local: str, remote: str, digest: str = "") -> Dict[str, Any]:
        """Uploads a file in chunks. With `digest` (the file's sha256), a
        file of more than one chunk is announced first and not sent when the
        daemon already stores those bytes; a file of one chunk goes in one
        request, as before. Either way the daemon checks the bytes it gets
        against the digest (DATA_LOSS if the file changed meanwhile)."""
        upload_id = ""
        with open(local, "rb") as handle:
            if digest and os.fstat(handle.fileno()).st_size > ARTIFACT_CHUNK_BYTES:
                request = tracking_pb2.UploadArtifactRequest(run_id=run_id, path=remote, expected_digest=digest)
                response = self._call(_TRACKING + "UploadArtifact", request, tracking_pb2.UploadArtifactResponse.FromString)
                if response.already_stored:
                    return _artifact(response.artifact)
                # Not stored (or a daemon older than expected_digest): send the bytes.
                upload_id = response.upload_id
            chunk = handle.read(ARTIFACT_CHUNK_BYTES)
            while True:
                following = handle.read(ARTIFACT_CHUNK_BYTES)
                request = tracking_pb2.UploadArtifactRequest(
                    run_id=run_id, path=remote, upload_id=upload_id, data=chunk, finish=not following,
                    expected_digest="" if upload_id else digest,
                )
                response = self._call(_TRACKING + "UploadArtifact", request, tracking_pb2.UploadArtifactResponse.FromString)
                upload_id = response.upload_id
                if not following:
                    return _artifact(response.artifact)
                chunk = following

    def list_artifacts(self, run_id: str, path: str = "") -> List[Dict[str, Any]]:
        response = self._call(
            _TRACKING + "ListArtifacts", tracking_pb2.ListArtifactsRequest(run_id=run_id, prefix=path),
            tracking_pb2.ListArtifactsResponse.FromString,
        )
        return [_artifact(a) for a in response.artifacts]

    def download_artifacts(self, run_id: str, path: str = "", dest: Union[str, "os.PathLike[str]"] = ".") -> str:
        """Download an artifact, or every artifact under a folder, into
        `dest`, keeping paths relative to the run; returns the local path.
        Each file is written chunk by chunk as the frames arrive (never
        whole in memory) to a `.part` file, checked against the daemon's
        sha256, then renamed into place."""
        dest = os.path.abspath(os.fspath(dest))
        listed = self.list_artifacts(run_id, path)
        if not listed:
            raise errors.NotFoundError("run %s has no artifact at %r" % (run_id, path))
        for artifact in listed:
            target = os.path.abspath(os.path.join(dest, *artifact["path"].split("/")))
            if os.path.commonpath([dest, target]) != dest:
                raise errors.InvalidArgumentError("artifact path %r escapes %s" % (artifact["path"], dest))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self._download(tracking_pb2.DownloadArtifactRequest(run_id=run_id, path=artifact["path"]), target)
        if len(listed) == 1 and listed[0]["path"] == path:
            return os.path.join(dest, *path.split("/"))
        return os.path.join(dest, *path.split("/")) if path else dest

    def _download(self, request: tracking_pb2.DownloadArtifactRequest, target: str) -> None:
        """Streams one DownloadArtifact answer into `target`, frame by frame.

        This reads the connection's frames itself (the client's `_call`
        would merge a stream into one message in memory); like `_call` it
        holds the client's lock, and a failure other than a status closes
        the connection, whose byte stream can no longer be trusted."""
        import hashlib

        partial = target + ".part"
        hasher = hashlib.sha256()
        with self._lock:
            connection = self._connected()
            request_id, frame = connection._frame(_TRACKING + "DownloadArtifact", request.SerializeToString())
            try:
                connection._send(frame)
                with open(partial, "wb") as handle:
                    while True:
                        response = connection._next_for(request_id)
                        if response.HasField("status") and response.status.code != 0:
                            error = errors.error_for(response.status.code, response.status.message)
                            while response.more:
                                response = connection._next_for(request_id)
                            raise error
                        part = tracking_pb2.DownloadArtifactResponse.FromString(response.body)
                        for chunk in part.chunks:
                            handle.write(chunk)
                            hasher.update(chunk)
                        if not response.more:
                            digest = part.artifact.digest
                            break
            except errors.PlinthError:
                _remove(partial)
                raise
            except BaseException:
                connection.close()
                _remove(partial)
                raise
        if hasher.hexdigest() != digest:
            _remove(partial)
            raise errors.DataLossError("%s does not match the artifact's digest %s" % (target, digest))
        os.replace(partial, target)
    def _model_blob(self, local: str, known: bool = True) -> Tuple[str, bool]:
        """The model file's sha256, uploaded unless this daemon has already
        confirmed it stores those bytes (`known`): (digest, whether an
        upload was made). The daemon still checks at CreateModelVersion
        that the blob exists; it never takes a digest for bytes it did not
        hash itself."""
        digest = self._file_digest(local)
        if known and digest in self._stored_digests:
            return digest, False
        blob = self._upload_blob(local, digest)
        if blob["digest"] != digest:  # the daemon verified the bytes against the digest; cannot differ
            raise errors.DataLossError("%s was stored as %s, not %s" % (local, blob["digest"], digest))
        if len(self._stored_digests) >= _KNOWN_DIGESTS:
            self._stored_digests.pop(next(iter(self._stored_digests)))
        self._stored_digests[digest] = None
        return digest, True

    def _file_digest(self, local: str) -> str:
        """The file's sha256, cached by (size, mtime_ns, ctime_ns, inode,
        device). An entry is only kept when the file did not change while
        it was hashed and had last changed long enough before: a file
        rewritten within the file system's timestamp granularity could
        otherwise keep its old stat and a stale digest (git's "racy" index
        entries). Long enough is two seconds where the timestamps are whole
        seconds (FAT's granularity is two), and _SETTLE_FINE_NS where they
        carry a fraction: Linux stamps files from a clock that moves once a
        scheduler tick, at most 10 ms."""
        import hashlib

        key = os.path.abspath(local)
        before = os.stat(local)
        ident = (before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino, before.st_dev)
        cached = self._file_digests.get(key)
        if cached is not None and cached[0] == ident:
            return cached[1]
        hasher = hashlib.sha256()
        with open(local, "rb") as handle:
            while True:
                chunk = handle.read(ARTIFACT_CHUNK_BYTES)
                if not chunk:
                    break
                hasher.update(chunk)
        digest = hasher.hexdigest()
        after = os.stat(local)
        changed = max(before.st_mtime_ns, before.st_ctime_ns)
        fine = before.st_mtime_ns % 1_000_000_000 != 0 or before.st_ctime_ns % 1_000_000_000 != 0
        settled = time.time_ns() - changed > (_SETTLE_FINE_NS if fine else 2_000_000_000)
        if settled and ident == (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino, after.st_dev):
            if len(self._file_digests) >= _KNOWN_DIGESTS:
                self._file_digests.pop(next(iter(self._file_digests)))
            self._file_digests[key] = (ident, digest)
        return digest

    def _upload_blob(self, local: str, digest: str = "") -> Dict[str, Any]:
        # An empty run id stores the blob with no run listing: a model file
        # may be registered after its run has ended.
        return self._upload("", local, "", digest)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _artifact(a: tracking_pb2.Artifact) -> Dict[str, Any]:
    return {"path": a.path, "digest": a.digest, "size": a.size, "created_ms": a.created_ms}
