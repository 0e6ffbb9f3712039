"""The calibration store: versioned JSON per line, atomic writes, activation history.

Layout under ``root/<line>/``::

    v000001.json, v000002.json ...   immutable calibrations (never overwritten)
    active.json                      activation history; its last entry is active
    .lock                            advisory lock held while writing

Every write goes to a temporary file in the same folder, is fsynced, then
linked (versions: never replaces) or renamed (active.json) into place, and the
folder is fsynced: a crash at any point leaves either the old or the new file.
``active_version()`` is cheap (a ``stat`` while nothing changed), so the
running line can poll it and pick up a newly activated calibration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from calibration.record import SCHEMA_VERSION, Calibration, parse_calibration
from core.errors import InputFileError
from core.files import atomic_write_bytes

__all__ = ["Activation", "CalibrationStore", "DiffEntry", "atomic_write_bytes"]

_VERSION_FILE = re.compile(r"^v(\d{6})\.json$")
_LINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class Activation:
    """One entry of the activation history."""

    version: int
    who: str
    when_utc: str
    action: str  # "activate" or "rollback"
    previous_version: int | None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DiffEntry:
    path: str
    old: Any
    new: Any


def _now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value


class CalibrationStore:
    """The calibrations of one line under ``root``."""

    def __init__(self, root: str | Path, line: str) -> None:
        if not _LINE_NAME.match(line):
            raise InputFileError(root, f"line name {line!r}: use letters, digits, . _ -")
        self.root = Path(root)
        self.line = line
        self.folder = self.root / line
        self._active_path = self.folder / "active.json"
        self._stat_key: tuple[int, int, int] | None = None
        self._cached: list[Activation] = []

    # ----------------------------------------------------------- plumbing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._clean_temp()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _clean_temp(self, older_than_s: float = 60.0) -> None:
        """Remove temp files left by writers that died (older than a minute)."""
        for p in self.folder.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - p.stat().st_mtime > older_than_s:
                    p.unlink()

    def path_of(self, version: int) -> Path:
        return self.folder / f"v{version:06d}.json"

    # ------------------------------------------------------------ versions
    def versions(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        found = (_VERSION_FILE.match(p.name) for p in self.folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def load(self, version: int) -> Calibration:
        path = self.path_of(version)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            have = ", ".join(str(v) for v in self.versions()) or "none"
            raise InputFileError(
                path, f"no calibration version {version} for line {self.line!r} (have: {have})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:  # unreadable or binary: was a traceback
            raise InputFileError(path, f"cannot read: {exc}") from None
        cal = parse_calibration(text, path, line=self.line)
        if cal.version != version:
            raise InputFileError(path, f"holds version {cal.version}, not {version}", "version")
        return cal

    def save(self, cal: Calibration, who: str) -> Calibration:
        """Store ``cal`` as the next version (not activated); returns it with its version."""
        if cal.line != self.line:
            raise InputFileError(
                self.folder, f"calibration of line {cal.line!r} cannot go into {self.line!r}"
            )
        with self._locked():
            version = max(self.versions(), default=0) + 1
            saved = cal.model_copy(
                update={
                    "version": version,
                    "created_by": who,
                    "created_utc": cal.created_utc or _now_utc(),
                }
            )
            data = json.dumps(saved.model_dump(mode="json"), indent=1).encode()
            atomic_write_bytes(self.path_of(version), data, replace=False)
        return saved

    def import_file(self, path: str | Path, who: str) -> Calibration:
        """Validate a calibration JSON file (its line must be this store's) and save it."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputFileError(p, f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:  # a binary file: was a traceback
            raise InputFileError(p, f"not UTF-8 text (byte {exc.start})") from None
        return self.save(parse_calibration(text, p, line=self.line), who)

    # ---------------------------------------------------------- activation
    def history(self) -> list[Activation]:
        try:
            st = os.stat(self._active_path)
        except FileNotFoundError:
            self._stat_key, self._cached = None, []
            return []
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._stat_key:
            self._cached = self._read_history()
            self._stat_key = key
        return list(self._cached)

    def _read_history(self) -> list[Activation]:
        path = self._active_path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema_version") != SCHEMA_VERSION:
                raise InputFileError(
                    path,
                    f"activation history has schema_version {data.get('schema_version')!r}, "
                    f"this sortline reads {SCHEMA_VERSION}: move it aside and activate a version",
                    "schema_version",
                )
            if data.get("line") != self.line:
                raise InputFileError(path, f"belongs to line {data.get('line')!r}", "line")
            return [Activation(**entry) for entry in data["history"]]
        except (
            json.JSONDecodeError,
            UnicodeDecodeError,
            KeyError,
            TypeError,
            AttributeError,
        ) as exc:
            raise InputFileError(
                path,
                f"activation history is damaged ({exc}): move it aside (versions are kept) "
                "and activate a version again",
            ) from None

    def active_version(self) -> int | None:
        """The active version, or None; one ``stat`` when nothing changed."""
        hist = self.history()
        return hist[-1].version if hist else None

    def active_record(self) -> Activation | None:
        hist = self.history()
        return hist[-1] if hist else None

    def active(self) -> Calibration | None:
        version = self.active_version()
        return None if version is None else self.load(version)

    def _append(self, entry: Activation, on_chunk: Callable[[int], None] | None = None) -> None:
        hist = self._read_history() if self._active_path.exists() else []
        hist.append(entry)
        data = {
            "schema_version": SCHEMA_VERSION,
            "line": self.line,
            "history": [h.to_dict() for h in hist],
        }
        atomic_write_bytes(
            self._active_path, json.dumps(data, indent=1).encode(), on_chunk=on_chunk
        )

    def activate(
        self,
        version: int,
        who: str,
        note: str = "",
        force: bool = False,
        _on_chunk: Callable[[int], None] | None = None,
    ) -> Activation:
        """Make ``version`` active. A calibration that failed its checks is refused
        unless ``force`` (then the note should say why)."""
        cal = self.load(version)
        if not cal.passed and not force:
            raise InputFileError(
                self.path_of(version),
                "this calibration failed its checks and is not applied: recalibrate, or "
                "activate with --force and a --note saying why",
            )
        with self._locked():
            current = self.active_version() if self._active_path.exists() else None
            entry = Activation(version, who, _now_utc(), "activate", current, note)
            self._append(entry, _on_chunk)
        return entry

    def rollback(self, who: str, note: str = "") -> Activation:
        """Return to the version that was active before the current one."""
        with self._locked():
            hist = self._read_history() if self._active_path.exists() else []
            if not hist or hist[-1].previous_version is None:
                raise InputFileError(
                    self._active_path, "nothing to roll back to: no earlier activation"
                )
            target = hist[-1].previous_version
            before = [h for h in hist[:-1] if h.version == target]
            previous = before[-1].previous_version if before else None
            self.load(target)
            entry = Activation(
                target,
                who,
                _now_utc(),
                "rollback",
                previous,
                note or f"rolled back from v{hist[-1].version}",
            )
            self._append(entry)
        return entry

    # ---------------------------------------------------------------- diff
    def diff(self, old: int, new: int, with_quality: bool = False) -> list[DiffEntry]:
        """Every value that differs between two versions (bookkeeping fields and, unless
        ``with_quality``, the procedures' quality figures left out)."""
        flat: list[dict[str, Any]] = []
        for version in (old, new):
            data = self.load(version).model_dump(mode="json")
            for key in ("version", "created_utc", "created_by"):
                data.pop(key)
            if not with_quality:
                data.pop("quality")
            out: dict[str, Any] = {}
            _flatten(data, "", out)
            flat.append(out)
        keys = sorted(set(flat[0]) | set(flat[1]))
        return [
            DiffEntry(k, flat[0].get(k), flat[1].get(k))
            for k in keys
            if flat[0].get(k) != flat[1].get(k)
        ]
