"""Drop locations: where report files arrive (a local folder, an SFTP server, an S3 bucket).

I/O only. One small :class:`Drop` protocol and three real implementations:

* :class:`LocalDrop` -- a folder on this machine (the embedded default);
* :class:`SftpDrop` -- an SFTP server, through paramiko (as Airflow's SFTP provider);
* :class:`S3Drop` -- an S3 bucket and key prefix, through boto3.

Every name is a POSIX path relative to the drop's root. Names are validated before any I/O
(:func:`check_name`) and listings never yield a name that leaves the root: symlinks pointing
outside the root (local and SFTP) and unsafe object keys (S3) are skipped with a logged warning.
Writes are atomic for readers: :meth:`Drop.put` uploads to a hidden ``.part`` name beside the
target and renames it (an S3 PUT is atomic already); :meth:`Drop.download` writes to a hidden
``.part`` file in the destination folder and renames it.

Which listed files are complete is decided by :func:`ready_entries`; its docstring states the
exact rule (``.ctrl`` semaphores, otherwise a size unchanged across two listings).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import io
import logging
import os
import posixpath
import re
import secrets
import shutil
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, Self, runtime_checkable
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

CONTROL_SUFFIX = ".ctrl"
TEMPORARY_SUFFIXES = (".part", ".tmp", ".filepart")
_CHUNK = 1024 * 1024


# --- errors and names --------------------------------------------------------------------------
class UnsafeName(ValueError):
    """A drop name that could leave the drop's root or be misread (``../x``, ``/etc/passwd``)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"unsafe drop name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class DropAuthError(PermissionError):
    """The server refused the credentials (wrong password, key or access key/secret)."""


class DropConnectionError(ConnectionError):
    """The server could not be reached, did not answer in time, or its host key is unknown."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe relative POSIX path inside a drop, else raise UnsafeName.

    Rejected: empty names, absolute names (``/x``, ``C:x``), backslashes, NUL and other
    control characters, and empty, ``.`` or ``..`` segments (``a//b``, ``a/./b``, ``a/../b``).
    """
    if not isinstance(name, str):
        raise UnsafeName(repr(name), "not a string")
    if not name:
        raise UnsafeName(name, "empty name")
    if "\x00" in name:
        raise UnsafeName(name, "contains NUL")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise UnsafeName(name, "contains a control character")
    if "\\" in name:
        raise UnsafeName(name, "contains a backslash")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise UnsafeName(name, "absolute path")
    for segment in name.split("/"):
        if segment == "":
            raise UnsafeName(name, "empty path segment")
        if segment == "..":
            raise UnsafeName(name, "'..' segment")
        if segment == ".":
            raise UnsafeName(name, "'.' segment")
    return name


def is_control_name(name: str) -> bool:
    """True for a ``.ctrl`` semaphore (never a data file)."""
    return name.lower().endswith(CONTROL_SUFFIX) and not is_temporary_name(name)


def is_temporary_name(name: str) -> bool:
    """True for an upload in progress: a segment starting with ``.``, or a name ending in
    ``.part``, ``.tmp`` or ``.filepart`` (any case)."""
    if any(segment.startswith(".") for segment in name.split("/")):
        return True
    return name.lower().endswith(TEMPORARY_SUFFIXES)


def _safe_listed_name(name: str, where: str) -> bool:
    try:
        check_name(name)
    except UnsafeName as exc:
        log.warning("drop %s: skipping listed entry: %s", where, exc)
        return False
    return True


def _temp_name(base: str) -> str:
    return f".{base}.{secrets.token_hex(6)}.part"


def _write_atomically(dest: Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``dest`` through a hidden ``.part`` file in its folder, then rename it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / _temp_name(dest.name)
    try:
        with open(tmp, "xb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _copy(src: IO[bytes], out: IO[bytes]) -> None:
    """Copy as data arrives (``read1`` returns what one read gives, without waiting to fill)."""
    read = getattr(src, "read1", src.read)
    while chunk := read(_CHUNK):
        out.write(chunk)


def _download_target(dest: Path, name: str) -> Path:
    dest = Path(dest)
    return dest / posixpath.basename(name) if dest.is_dir() else dest


def _timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


# --- the protocol ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DropEntry:
    """One file in a drop: its name relative to the root (POSIX), size in bytes, mtime (UTC)."""

    name: str
    size: int
    mtime: datetime | None


@runtime_checkable
class Drop(Protocol):
    """A place report files arrive. Names are POSIX paths relative to the drop's root."""

    def list(self) -> builtins.list[DropEntry]:
        """All files below the root (recursive, files only), sorted by name."""
        ...

    def read(self, name: str) -> bytes:
        """The whole content of one file."""
        ...

    def download(self, name: str, dest: Path) -> Path:
        """Stream one file to ``dest`` (a file path, or a folder to keep the base name);
        written to a hidden temporary name in the destination folder, then renamed."""
        ...

    def put(self, name: str, data: bytes | Path) -> None:
        """Write one file atomically for readers (replacing any file of that name)."""
        ...

    def exists(self, name: str) -> bool:
        """True if ``name`` is a file in the drop."""
        ...

    def close(self) -> None:
        """Release connections; safe to call twice."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _DropBase:
    """Context-manager plumbing shared by the implementations."""

    def close(self) -> None:
        """Release connections; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --- local folder ------------------------------------------------------------------------------
class LocalDrop(_DropBase):
    """A folder on this machine. Symlinks are followed only while they stay inside the root;
    symlinked folders are never descended by :meth:`list` (their files are listed where they
    really live, if that is inside the root)."""

    def __init__(self, root: Path | str) -> None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(errno.ENOENT, "drop folder does not exist", str(path))
        self.root = path.resolve()

    def __repr__(self) -> str:
        return f"LocalDrop({str(self.root)!r})"

    def _inside(self, path: Path) -> bool:
        return path == self.root or path.is_relative_to(self.root)

    def _path(self, name: str) -> Path:
        """The real path of ``name``; raises UnsafeName if it resolves outside the root."""
        check_name(name)
        real = self.root.joinpath(*name.split("/")).resolve()
        if not self._inside(real):
            raise UnsafeName(name, "resolves outside the drop root (symlink)")
        return real

    def list(self) -> builtins.list[DropEntry]:
        """All files below the root, sorted by name."""

        def failed(exc: OSError) -> None:
            if exc.filename == str(self.root):
                raise exc
            log.warning("drop %s: cannot list %s: %s", self.root, exc.filename, exc)

        entries: builtins.list[DropEntry] = []
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=failed):
            folder = Path(dirpath)
            for dirname in builtins.list(dirnames):
                link = folder / dirname
                if link.is_symlink():
                    dirnames.remove(dirname)
                    rel = link.relative_to(self.root).as_posix()
                    if self._inside(link.resolve()):
                        log.info("drop %s: not descending symlinked folder %s", self.root, rel)
                    else:
                        log.warning(
                            "drop %s: skipping symlinked folder %s: it points outside the root",
                            self.root,
                            rel,
                        )
            for filename in filenames:
                path = folder / filename
                rel = path.relative_to(self.root).as_posix()
                if not _safe_listed_name(rel, str(self.root)):
                    continue
                if path.is_symlink() and not self._inside(path.resolve()):
                    log.warning(
                        "drop %s: skipping symlink %s: it points outside the root", self.root, rel
                    )
                    continue
                try:
                    st = path.stat()
                except OSError:  # vanished since the walk, or a dangling link
                    continue
                if stat.S_ISREG(st.st_mode):
                    entries.append(DropEntry(rel, st.st_size, _timestamp(st.st_mtime)))
        return sorted(entries, key=lambda e: e.name)

    def read(self, name: str) -> bytes:
        """The whole content of one file."""
        return self._path(name).read_bytes()

    def download(self, name: str, dest: Path) -> Path:
        """Copy one file to ``dest`` through a temporary name."""
        source = self._path(name)
        with open(source, "rb") as src:
            return _write_atomically(
                _download_target(dest, name), lambda out: shutil.copyfileobj(src, out, _CHUNK)
            )

    def put(self, name: str, data: bytes | Path) -> None:
        """Write ``name`` via a hidden ``.part`` file in the same folder, then rename it."""
        check_name(name)
        *folders, base = name.split("/")
        parent = self.root.joinpath(*folders)
        if not self._inside(parent.resolve()):
            raise UnsafeName(name, "resolves outside the drop root (symlink)")
        parent.mkdir(parents=True, exist_ok=True)
        parent = parent.resolve()
        if not self._inside(parent):
            raise UnsafeName(name, "resolves outside the drop root (symlink)")
        if isinstance(data, bytes | bytearray | memoryview):
            _write_atomically(parent / base, lambda out: out.write(data))
        else:
            with open(data, "rb") as src:
                _write_atomically(parent / base, lambda out: _copy(src, out))

    def exists(self, name: str) -> bool:
        """True if ``name`` is a file inside the root."""
        check_name(name)
        try:
            return self._path(name).is_file()
        except UnsafeName:  # a well-formed name whose symlink leaves the root
            return False


# --- SFTP --------------------------------------------------------------------------------------
class SftpDrop(_DropBase):
    """A folder on an SFTP server (paramiko).

    Host keys are verified: ``known_hosts=None`` uses the user's ``~/.ssh/known_hosts``, a path
    uses that file, and only the literal ``"auto-add"`` (for tests) trusts an unknown host.
    ``timeout`` bounds the TCP connect, the SSH banner, authentication and every SFTP request.
    One connection per drop: open a drop per thread rather than sharing one.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        *,
        password: str | None = None,
        key_path: Path | str | None = None,
        root: str = "/",
        known_hosts: Path | str | None = None,
        timeout: float = 10.0,
    ) -> None:
        import paramiko  # type: ignore[import-untyped]  # heavy; only SFTP users pay for it

        self.host, self.port, self.username = host, port, username
        where = f"{username}@{host}:{port}"
        client = paramiko.SSHClient()
        if known_hosts == "auto-add":
            client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        else:
            if known_hosts is None:
                client.load_system_host_keys()
            else:
                client.load_host_keys(str(known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        use_defaults = password is None and key_path is None
        try:
            client.connect(
                hostname=host,
                port=port,
                username=username,
                password=password,
                key_filename=str(key_path) if key_path is not None else None,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                allow_agent=use_defaults,
                look_for_keys=use_defaults,
            )
            self._sftp = client.open_sftp()
        except paramiko.AuthenticationException as exc:
            client.close()
            raise DropAuthError(f"SFTP login refused for {where}: {exc}") from exc
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise DropConnectionError(
                f"SFTP host key of {host}:{port} does not match known_hosts: {exc}"
            ) from exc
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise DropConnectionError(f"SFTP connection to {where} failed: {exc}") from exc
        self._client = client
        self._sftp.get_channel().settimeout(timeout)
        try:
            self.root = self._sftp.normalize(root)
            if not stat.S_ISDIR(self._sftp.stat(self.root).st_mode or 0):
                raise NotADirectoryError(errno.ENOTDIR, "SFTP drop root is not a folder", root)
        except FileNotFoundError as exc:
            self.close()
            raise FileNotFoundError(
                errno.ENOENT, f"SFTP drop folder does not exist on {host}:{port}", root
            ) from exc
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SftpDrop({self.username}@{self.host}:{self.port}{self.root})"

    def close(self) -> None:
        """Close the SFTP session and the SSH connection."""
        sftp, client = getattr(self, "_sftp", None), getattr(self, "_client", None)
        if sftp is not None:
            sftp.close()
        if client is not None:
            client.close()

    def _inside(self, path: str) -> bool:
        return path == self.root or path.startswith(self.root.rstrip("/") + "/")

    def _remote(self, name: str) -> str:
        return posixpath.join(self.root, check_name(name))

    def _resolved(self, name: str) -> str:
        """The server's canonical path of ``name``; UnsafeName if that leaves the root."""
        real: str = self._sftp.normalize(self._remote(name))
        if not self._inside(real):
            raise UnsafeName(name, "resolves outside the drop root (symlink)")
        return real

    def list(self) -> builtins.list[DropEntry]:
        """All files below the root, sorted by name (symlinks leaving the root are skipped)."""
        where = f"sftp://{self.host}:{self.port}{self.root}"
        entries: builtins.list[DropEntry] = []
        folders = [""]
        while folders:
            rel_dir = folders.pop()
            for attr in self._sftp.listdir_attr(posixpath.join(self.root, rel_dir)):
                if attr.filename in (".", ".."):
                    continue
                rel = posixpath.join(rel_dir, attr.filename)
                if not _safe_listed_name(rel, where):
                    continue
                path = posixpath.join(self.root, rel)
                if attr.st_mode is None:
                    attr = self._sftp.lstat(path)
                mode = attr.st_mode or 0
                if stat.S_ISLNK(mode):
                    try:
                        real = self._sftp.normalize(path)
                        target = self._sftp.stat(real)
                    except OSError:
                        real, target = "", None
                    if target is None or not self._inside(real):
                        log.warning(
                            "drop %s: skipping symlink %s: it points outside the root", where, rel
                        )
                        continue
                    if stat.S_ISDIR(target.st_mode or 0):
                        log.info("drop %s: not descending symlinked folder %s", where, rel)
                        continue
                    attr, mode = target, target.st_mode or 0
                if stat.S_ISDIR(mode):
                    folders.append(rel)
                elif stat.S_ISREG(mode):
                    entries.append(DropEntry(rel, attr.st_size or 0, _timestamp(attr.st_mtime)))
        return sorted(entries, key=lambda e: e.name)

    def read(self, name: str) -> bytes:
        """The whole content of one file."""
        with self._sftp.open(self._resolved(name), "rb") as remote:
            remote.prefetch()
            data: bytes = remote.read()
        return data

    def download(self, name: str, dest: Path) -> Path:
        """Stream one file to ``dest`` through a temporary name."""
        path = self._resolved(name)
        return _write_atomically(
            _download_target(dest, name), lambda out: self._sftp.getfo(path, out)
        )

    def _folder(self, rel: str) -> str:
        """Create ``rel`` below the root as needed; return its canonical path (inside the root)."""
        current = self.root
        for segment in rel.split("/") if rel else []:
            current = posixpath.join(current, segment)
            try:
                mode = self._sftp.stat(current).st_mode or 0
            except FileNotFoundError:
                with contextlib.suppress(OSError):  # another writer may have created it
                    self._sftp.mkdir(current)
                mode = self._sftp.stat(current).st_mode or 0
            if not stat.S_ISDIR(mode):
                raise NotADirectoryError(errno.ENOTDIR, "not a folder on the SFTP server", current)
            current = self._sftp.normalize(current)
            if not self._inside(current):
                raise UnsafeName(rel, "resolves outside the drop root (symlink)")
        return current

    def put(self, name: str, data: bytes | Path) -> None:
        """Upload to a hidden ``.part`` name beside the target, then rename it over the target."""
        check_name(name)
        rel_dir, _, base = name.rpartition("/")
        folder = self._folder(rel_dir)
        tmp, final = posixpath.join(folder, _temp_name(base)), posixpath.join(folder, base)
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                self._sftp.putfo(io.BytesIO(data), tmp, file_size=len(data))
            else:
                with open(data, "rb") as src:
                    self._sftp.putfo(src, tmp)
            self._rename(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                self._sftp.remove(tmp)
            raise

    def _rename(self, tmp: str, final: str) -> None:
        try:
            self._sftp.posix_rename(tmp, final)  # atomic replace (posix-rename@openssh.com)
        except OSError as first:
            # Servers without the extension: plain SFTP rename refuses to overwrite, so the
            # old file is removed first (a short window in which the name is absent).
            try:
                if self._is_file(final):
                    log.warning(
                        "SFTP server lacks posix-rename; replacing %s non-atomically", final
                    )
                    self._sftp.remove(final)
                self._sftp.rename(tmp, final)
            except OSError:
                raise first from None

    def _is_file(self, path: str) -> bool:
        """True if the server path is a regular file."""
        try:
            return stat.S_ISREG(self._sftp.stat(path).st_mode or 0)
        except FileNotFoundError:
            return False

    def exists(self, name: str) -> bool:
        """True if ``name`` is a file inside the root."""
        try:
            path = self._resolved(name)
        except FileNotFoundError:
            return False
        except UnsafeName as exc:
            if exc.reason.startswith("resolves outside"):
                return False
            raise
        return self._is_file(path)


# --- S3 ----------------------------------------------------------------------------------------
_S3_AUTH = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
_S3_MISSING = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """Turn botocore errors into FileNotFoundError / DropAuthError / DropConnectionError."""
    from botocore.exceptions import (  # type: ignore[import-untyped]
        ClientError,
        ConnectTimeoutError,
        NoCredentialsError,
        ReadTimeoutError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _S3_AUTH or status == 403:
            raise DropAuthError(
                f"S3 refused access to {what} ({code or status}): check the access key and secret"
            ) from exc
        if code in _S3_MISSING or status == 404:
            raise FileNotFoundError(errno.ENOENT, "not found in S3", what) from exc
        raise
    except NoCredentialsError as exc:
        raise DropAuthError(f"no S3 credentials for {what}") from exc
    except (BotoConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
        raise DropConnectionError(f"S3 endpoint unreachable for {what}: {exc}") from exc


class S3Drop(_DropBase):
    """Objects under ``prefix`` in an S3 bucket (boto3). Listing is paginated (``page_size``
    keys per request); the bucket is checked on open, so bad credentials fail here."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        page_size: int = 1000,
        timeout: float = 10.0,
    ) -> None:
        import boto3  # type: ignore[import-untyped]  # heavy; only S3 users pay for it
        from botocore.config import Config  # type: ignore[import-untyped]

        if (access_key is None) != (secret_key is None):
            raise ValueError("give both access_key and secret_key, or neither")
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000")
        prefix = prefix.strip("/")
        if prefix:
            check_name(prefix)
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.page_size = page_size
        options: dict[str, Any] = {
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "retries": {"max_attempts": 3, "mode": "standard"},
        }
        if endpoint_url:
            options["s3"] = {"addressing_style": "path"}
        #: The boto3 client (e.g. to register event hooks).
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(**options),
        )
        try:
            with _s3_errors(f"s3://{bucket}"):
                self.client.head_bucket(Bucket=bucket)
        except BaseException:
            self.client.close()
            raise

    def __repr__(self) -> str:
        return f"S3Drop(s3://{self.bucket}/{self.prefix})"

    def close(self) -> None:
        """Close the client's connection pool."""
        self.client.close()

    def _key(self, name: str) -> str:
        return self.prefix + check_name(name)

    def _what(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def list(self) -> builtins.list[DropEntry]:
        """All objects under the prefix, sorted by name; unsafe keys are skipped."""
        where = f"s3://{self.bucket}/{self.prefix}"
        entries: builtins.list[DropEntry] = []
        with _s3_errors(where):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=self.prefix,
                PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key: str = obj["Key"]
                    name = key[len(self.prefix) :]
                    if key.endswith("/") or not _safe_listed_name(name, where):
                        continue  # "folder" markers and unsafe keys
                    modified = obj.get("LastModified")
                    entries.append(
                        DropEntry(name, int(obj["Size"]), modified and modified.astimezone(UTC))
                    )
        return sorted(entries, key=lambda e: e.name)

    def read(self, name: str) -> bytes:
        """The whole content of one object."""
        key = self._key(name)
        with _s3_errors(self._what(name)):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        return data

    def download(self, name: str, dest: Path) -> Path:
        """Stream one object to ``dest`` through a temporary name."""
        key = self._key(name)
        with _s3_errors(self._what(name)):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return _write_atomically(
                    _download_target(dest, name), lambda out: shutil.copyfileobj(body, out, _CHUNK)
                )
            finally:
                body.close()

    def put(self, name: str, data: bytes | Path) -> None:
        """PUT one object (atomic in S3); files are streamed, multipart when large."""
        key = self._key(name)
        with _s3_errors(self._what(name)):
            if isinstance(data, bytes | bytearray | memoryview):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))
            else:
                with open(data, "rb") as src:
                    self.client.upload_fileobj(src, self.bucket, key)

    def exists(self, name: str) -> bool:
        """True if the object exists."""
        key = self._key(name)
        try:
            with _s3_errors(self._what(name)):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return False
        return True


# --- URLs --------------------------------------------------------------------------------------
_OPTIONS: dict[str, frozenset[str]] = {
    "local": frozenset(),
    "sftp": frozenset({"username", "password", "key_path", "known_hosts", "timeout"}),
    "s3": frozenset({"endpoint_url", "region", "access_key", "secret_key", "page_size", "timeout"}),
}


@dataclass
class DropLocation:
    """What a drop URL means: the kind of drop and the keyword arguments of its class."""

    kind: Literal["local", "sftp", "s3"]
    options: dict[str, Any] = field(default_factory=dict)

    def open(self) -> Drop:
        """Connect."""
        if self.kind == "local":
            return LocalDrop(**self.options)
        if self.kind == "sftp":
            return SftpDrop(**self.options)
        return S3Drop(**self.options)


def parse_drop_url(url: str, **credentials: Any) -> DropLocation:
    """Read a drop URL without connecting.

    * ``file:///abs/path`` or a plain path -> local folder;
    * ``sftp://user[:password]@host[:port]/path`` -> SFTP (port 22, root ``/`` by default);
    * ``s3://bucket/prefix`` -> S3; the endpoint comes from ``endpoint_url=`` (None: AWS;
      ``pipelines.connections`` passes the settings' one).

    Keyword arguments override values in the URL (user, password); ``None`` values are ignored
    and an argument the kind of drop does not take raises TypeError. Percent-escapes in the
    user, password and path are decoded.
    """
    given = {k: v for k, v in credentials.items() if v is not None}
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options: dict[str, Any]
    kind: Literal["local", "sftp", "s3"]
    if scheme == "" or (len(scheme) == 1 and url[1:2] == ":"):  # a plain path
        kind, options = "local", {"root": Path(url)}
    elif scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URLs must name a local folder, not host {parts.netloc!r}")
        kind, options = "local", {"root": Path(unquote(parts.path))}
    elif scheme == "sftp":
        if not parts.hostname:
            raise ValueError(f"sftp URL without a host: {url!r}")
        options = {
            "host": parts.hostname,
            "port": parts.port or 22,
            "root": unquote(parts.path) or "/",
        }
        if parts.username:
            options["username"] = unquote(parts.username)
        if parts.password is not None:
            options["password"] = unquote(parts.password)
        kind = "sftp"
    elif scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"s3 URL without a bucket: {url!r}")
        options = {"bucket": parts.netloc, "prefix": unquote(parts.path).strip("/")}
        kind = "s3"
    else:
        raise ValueError(f"unsupported drop URL {url!r}: use a path, file://, sftp:// or s3://")
    if parts.query or parts.fragment:
        raise ValueError(f"drop URLs take no query or fragment: {url!r}")
    unknown = sorted(set(given) - _OPTIONS[kind])
    if unknown:
        raise TypeError(f"a {kind} drop does not take {', '.join(unknown)}")
    options.update(given)
    if kind == "sftp" and not options.get("username"):
        raise ValueError(f"sftp URL needs a user name (sftp://user@host/path): {url!r}")
    return DropLocation(kind, options)


def open_drop(url: str, **credentials: Any) -> Drop:
    """Open the drop a URL names (see :func:`parse_drop_url`); use it as a context manager."""
    return parse_drop_url(url, **credentials).open()


# --- readiness ---------------------------------------------------------------------------------
_XOFY = re.compile(r"_\d+of\d+(?=_|$)", re.IGNORECASE)
SEMAPHORE_FOLDER = "file_available"


def _semaphore_stems(base: str) -> set[str]:
    """Semaphore names (without ``.ctrl``) that release the data file ``base`` by DSR rules."""
    stem = _XOFY.sub("", base.split(".", 1)[0], count=1)
    stems = {stem}
    if stem.upper().startswith("DSR_"):
        stems.add("ACK_" + stem[4:])
    return stems


def ready_entries(
    drop: Drop, previous: dict[str, int] | None
) -> tuple[list[DropEntry], dict[str, int]]:
    """The data files of ``drop`` that are completely uploaded, and the sizes to pass next time.

    Pass the returned sizes as ``previous`` to the next call (``None`` on the first call).

    * Never ready: ``.ctrl`` files; temporary names (a path segment starting with ``.``, or a
      name ending in ``.part``, ``.tmp``, ``.filepart``). Only data files are in the sizes.
    * Semaphores. A folder *uses semaphores* when it, or any folder above it in the drop,
      contains a ``.ctrl`` file (a ``.ctrl`` in ``F/file_available/`` counts for ``F``).
      A data file ``F/B`` in such a folder is ready only once one of these exists:

      - ``F/B.ctrl`` (a companion: ``report.csv`` <- ``report.csv.ctrl``);
      - ``F/S.ctrl``, ``S`` being ``B`` without its extensions and without the ``_XofY`` part
        (DDEX DSR Part 1 §8.3: ``DSR_A_B_Svc_2024-Q1_CA_1of2_20240415T120000.tsv.gz`` <-
        ``DSR_A_B_Svc_2024-Q1_CA_20240415T120000.ctrl``), or ``ACK_`` in place of ``DSR_``
        (the cloud-storage wording of §8.3), or ``F/file_available/_S.ctrl`` (the older
        wording);
      - ``P.ctrl`` beside any folder ``P`` above the file (a batch folder: ``batch7.ctrl``
        releases everything under ``batch7/``);

      and even then not while its size differs from ``previous`` (seen growing).
    * Otherwise a data file is ready when ``previous`` has it at the same size (two listings,
      no growth). On the first call (``previous is None``) such files are never ready.
    """
    entries = drop.list()
    releases: set[str] = set()  # paths P (file or folder) with a P.ctrl semaphore
    gated: set[str] = set()  # folders containing a semaphore
    data: list[DropEntry] = []
    for entry in entries:
        if is_temporary_name(entry.name):
            continue
        if not is_control_name(entry.name):
            data.append(entry)
            continue
        folder, _, base = entry.name.rpartition("/")
        stem = base[: -len(CONTROL_SUFFIX)]
        parent, _, leaf = folder.rpartition("/")
        if leaf == SEMAPHORE_FOLDER and stem.startswith("_"):
            folder, stem = parent, stem[1:]
        gated.add(folder)
        releases.add(posixpath.join(folder, stem))
    sizes = {e.name: e.size for e in data}
    ready = []
    for entry in data:
        folder, _, base = entry.name.rpartition("/")
        above = [""]
        for segment in folder.split("/") if folder else []:
            above.append(posixpath.join(above[-1], segment))
        if gated.intersection(above):
            candidates = {entry.name, *above[1:]}
            candidates.update(posixpath.join(folder, s) for s in _semaphore_stems(base))
            grown = previous is not None and previous.get(entry.name, entry.size) != entry.size
            if releases.intersection(candidates) and not grown:
                ready.append(entry)
        elif previous is not None and previous.get(entry.name) == entry.size:
            ready.append(entry)
    return ready, sizes
