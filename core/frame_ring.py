"""A shared-memory frame ring: one writer process, readers on the same host.

The ring is a file in ``/dev/shm`` (``name`` "NAME" -> ``/dev/shm/NAME``; a
name containing "/" is a path) mapped with ``mmap``; not
``multiprocessing.shared_memory``, whose resource tracker unlinks segments
owned by another process (Python 3.11). The writer creates it under a temp
name and renames it into place, so a reader never maps a half-made header.

Layout, little-endian (``LAYOUT_VERSION``):

    header (HEADER_BYTES)
      0  8s  magic b"SLFRING\\0"        40  u64 write_seq: frames written; frame k
      8  u32 layout version                    lies in slot k % slots
     12  u32 header bytes               48  u32 writer pid (0: closed)
     16  u32 width px                   56  f64 t_s of the last write (monotonic)
     20  u32 height px                  64  f64 t_s of the writer's last beat
     24  u32 channels (1 or 3)          72  i64 request: frame counter a stepped
     28  u32 slots                              reader asks for (-1: none)
     32  u64 slot bytes
    slot s at HEADER_BYTES + s * slot_bytes
      0  u64 seq: 2k+1 while frame k is written, 2k+2 once complete
      8  i64 camera frame counter       24  i64 exposure encoder count (-1: none)
     16  f64 exposure t_s (writer's time.monotonic: the same host clock)
     64  pixels: height x width x channels uint8

Seqlock: a reader copies slot ``k % slots`` only if its seq reads ``2k+2``
before and after the copy, so a torn frame is never returned (stores are
seen in program order: x86-64). Readers poll; ``read`` returns the newest
frame not yet read, so frames a slow reader missed show up as gaps in the
camera counter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import mmap
import os
import re
import struct
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("sortline.frame_ring")

__all__ = [
    "HEADER_BYTES",
    "LAYOUT_VERSION",
    "FrameRingError",
    "FrameRingReader",
    "FrameRingWriter",
    "RingFrame",
    "remove_dead_rings",
    "ring_path",
]

MAGIC = b"SLFRING\0"
LAYOUT_VERSION = 1
HEADER_BYTES = 128
SLOT_HEAD_BYTES = 64
_HEAD = struct.Struct("<8sIIIIIIQ")  # magic .. slot bytes (offset 0)
_WRITE_SEQ, _PID, _LAST_WRITE, _BEAT, _REQUEST = 40, 48, 56, 64, 72
_U64, _U32, _F64, _I64 = (
    struct.Struct("<Q"),
    struct.Struct("<I"),
    struct.Struct("<d"),
    struct.Struct("<q"),
)
_SLOT_META = struct.Struct("<qdq")  # counter, t_s, exposure tick (offset 8 in a slot)
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}")
_POLL_S = 0.0005


class FrameRingError(RuntimeError):
    """The ring is missing, malformed or owned by a live writer (one line)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RingFrame:
    """image:         (H, W, 3) or (H, W) uint8, a copy owned by the caller.
    counter:       the camera's frame counter (+1 per exposure).
    t_s:           exposure time on the writer's ``time.monotonic`` (same host).
    exposure_tick: encoder count (uint32) at exposure, or None.
    """

    image: np.ndarray
    counter: int
    t_s: float
    exposure_tick: int | None


def ring_path(name: str) -> Path:
    """``/dev/shm/NAME``, or ``name`` itself when it contains "/"."""
    if "/" in name:
        return Path(name)
    if not _NAME.fullmatch(name):
        raise FrameRingError(
            f"frame ring name {name!r}: use letters, digits, '.', '_' and '-' "
            "(or a path containing '/')"
        )
    return Path("/dev/shm") / name


def _slot_bytes(width: int, height: int, channels: int) -> int:
    pixels = width * height * channels
    return SLOT_HEAD_BYTES + -(-pixels // 64) * 64


def _pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class _Mapped:
    """A mapped ring file: header fields and per-slot pixel views."""

    def __init__(self, name: str, path: Path, mm: mmap.mmap) -> None:
        self.name, self.path, self.mm = name, path, mm
        _magic, _ver, _hb, w, h, c, slots, stride = _HEAD.unpack_from(mm, 0)
        self.width, self.height, self.channels, self.slots, self.slot_bytes = w, h, c, slots, stride
        shape = (h, w) if c == 1 else (h, w, c)
        n = w * h * c
        self._pixels = [
            np.frombuffer(mm, np.uint8, n, self.slot_offset(s) + SLOT_HEAD_BYTES).reshape(shape)
            for s in range(slots)
        ]

    @property
    def shape(self) -> tuple[int, ...]:
        return self._pixels[0].shape

    def slot_offset(self, slot: int) -> int:
        return HEADER_BYTES + slot * self.slot_bytes

    def pixels(self, slot: int) -> np.ndarray:
        return self._pixels[slot]

    def get(self, fmt: struct.Struct, offset: int) -> int | float:
        value: int | float = fmt.unpack_from(self.mm, offset)[0]
        return value

    def put(self, fmt: struct.Struct, offset: int, value: int | float) -> None:
        fmt.pack_into(self.mm, offset, value)

    def close(self) -> None:
        self._pixels = []  # release the buffer exports before unmapping
        with contextlib.suppress(BufferError, ValueError):
            self.mm.close()


class FrameRingWriter:
    """The ring's one writer. ``create`` makes it; ``write`` publishes a frame."""

    def __init__(self, mapped: _Mapped, inode: int) -> None:
        self._m = mapped
        self._inode = inode
        self._seq = 0
        self._last_request = -1

    @property
    def name(self) -> str:
        return self._m.name

    @property
    def path(self) -> Path:
        return self._m.path

    @property
    def shape(self) -> tuple[int, ...]:
        return self._m.shape

    @classmethod
    def create(
        cls, name: str, width: int, height: int, channels: int, slots: int = 8
    ) -> FrameRingWriter:
        """A new ring at ``ring_path(name)``. A ring whose writer still runs is
        refused (``FrameRingError``); one left by a dead writer is replaced."""
        path = ring_path(name)
        if not (0 < width <= 65535 and 0 < height <= 65535):
            raise FrameRingError(f"frame ring {name}: size {width}x{height} px out of range")
        if channels not in (1, 3):
            raise FrameRingError(f"frame ring {name}: {channels} channels, expected 1 or 3")
        if not 1 <= slots <= 1024:
            raise FrameRingError(f"frame ring {name}: {slots} slots, expected 1..1024")
        stride = _slot_bytes(width, height, channels)
        size = HEADER_BYTES + slots * stride
        owner = _owner_pid(path)
        if owner is not None and _pid_alive(owner):
            raise FrameRingError(f"frame ring {name} ({path}) is in use by running process {owner}")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise FrameRingError(
                f"frame ring {name}: cannot create {tmp}: {exc.strerror}"
            ) from None
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
            inode = os.fstat(fd).st_ino
        except OSError as exc:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise FrameRingError(f"frame ring {name}: cannot size {tmp}: {exc.strerror}") from None
        os.close(fd)
        head = (MAGIC, LAYOUT_VERSION, HEADER_BYTES, width, height, channels, slots, stride)
        _HEAD.pack_into(mm, 0, *head)
        _U32.pack_into(mm, _PID, os.getpid())
        _F64.pack_into(mm, _BEAT, time.monotonic())
        _I64.pack_into(mm, _REQUEST, -1)
        os.replace(tmp, path)
        return cls(_Mapped(name, path, mm), inode)

    def write(
        self, image: np.ndarray, counter: int, t_s: float, exposure_tick: int | None = None
    ) -> None:
        """Publish ``image`` (the ring's shape, uint8) as the newest frame."""
        m = self._m
        if image.shape != m.shape or image.dtype != np.uint8:
            raise ValueError(
                f"frame ring {m.name}: image {image.shape} {image.dtype}, "
                f"the ring holds {m.shape} uint8"
            )
        k = self._seq
        slot = k % m.slots
        base = m.slot_offset(slot)
        m.put(_U64, base, 2 * k + 1)  # odd: being written
        m.pixels(slot)[...] = image
        tick = -1 if exposure_tick is None else int(exposure_tick)
        _SLOT_META.pack_into(m.mm, base + 8, int(counter), float(t_s), tick)
        m.put(_U64, base, 2 * k + 2)
        self._seq = k + 1
        m.put(_U64, _WRITE_SEQ, k + 1)
        now = time.monotonic()
        m.put(_F64, _LAST_WRITE, now)
        m.put(_F64, _BEAT, now)

    def beat(self) -> None:
        """Tell readers the writer lives while it has nothing to write."""
        self._m.put(_F64, _BEAT, time.monotonic())

    def wait_request(self, timeout_s: float) -> int | None:
        """Stepped use: the frame counter a reader asked for since the last call
        (a newer request than any returned so far), or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.beat()
            req = int(self._m.get(_I64, _REQUEST))
            if req > self._last_request:
                self._last_request = req
                return req
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_S)

    def close(self, unlink: bool = True) -> None:
        """Mark the writer gone; ``unlink`` removes the file if it is still ours."""
        m = self._m
        if m.mm.closed:
            return
        m.put(_U32, _PID, 0)
        m.close()
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                if m.path.stat().st_ino == self._inode:
                    m.path.unlink()


def remove_dead_rings(prefix: str, directory: Path = Path("/dev/shm")) -> list[Path]:
    """Remove the ring files ``directory/prefix*`` whose writer no longer runs
    and return them. A writer killed with SIGKILL (or by the OOM killer)
    cannot unlink its ring; a line that names its ring by process id would
    otherwise leave one in RAM (``/dev/shm``) for every such crash. Files that
    are not rings, and rings whose writer lives, are left alone."""
    gone = []
    for path in sorted(directory.glob(f"{glob.escape(prefix)}*")):
        try:
            owner = _owner_pid(path)
        except FrameRingError:
            continue  # unreadable: not ours to judge
        if owner is None or owner == os.getpid() or _pid_alive(owner):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # another process cleaned it first
        except OSError as exc:
            log.warning("frame ring %s of dead process %d: cannot remove: %s",
                        path, owner, exc.strerror)  # fmt: skip
            continue
        gone.append(path)
    return gone


def _owner_pid(path: Path) -> int | None:
    """The writer pid of an existing ring file, None if there is none (or it
    is unreadable: then it is replaced)."""
    try:
        with path.open("rb") as f:
            head = f.read(HEADER_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FrameRingError(f"frame ring at {path}: cannot read: {exc.strerror}") from None
    if len(head) < HEADER_BYTES or head[:8] != MAGIC:
        return None
    pid: int = _U32.unpack_from(head, _PID)[0]
    return pid


class FrameRingReader:
    """A reader of a ring: ``attach``, then ``read`` frames written since.

    Frames already in the ring when it attaches are never offered: a camera
    reopened after a stall must not deliver, again, frames the line has
    already processed (their fragments would be tracked and fired at twice).
    """

    def __init__(self, mapped: _Mapped) -> None:
        self._m = mapped
        # ring index of the oldest frame not yet offered: the next one written
        self._next = int(mapped.get(_U64, _WRITE_SEQ))
        self.retries = 0  # copies redone because the writer overtook them

    @property
    def name(self) -> str:
        return self._m.name

    @property
    def width(self) -> int:
        return self._m.width

    @property
    def height(self) -> int:
        return self._m.height

    @property
    def channels(self) -> int:
        return self._m.channels

    @property
    def slots(self) -> int:
        return self._m.slots

    @classmethod
    def attach(cls, name: str) -> FrameRingReader:
        path = ring_path(name)
        where = f"frame ring {name}"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            raise FrameRingError(f"{where}: {path} does not exist (writer not started?)") from None
        except OSError as exc:
            raise FrameRingError(f"{where}: cannot open {path}: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            if size < HEADER_BYTES:
                raise FrameRingError(f"{where}: {path} is truncated ({size} bytes)")
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        magic, ver, hbytes, w, h, c, slots, stride = _HEAD.unpack_from(mm, 0)
        problem = ""
        if magic != MAGIC:
            problem = f"{path} is not a frame ring (bad magic)"
        elif ver != LAYOUT_VERSION or hbytes != HEADER_BYTES:
            problem = f"layout version {ver}, this reader reads {LAYOUT_VERSION}"
        elif not (w and h and c in (1, 3) and slots and stride >= _slot_bytes(w, h, c)):
            problem = f"bad header ({w}x{h}x{c}, {slots} slots of {stride} bytes)"
        elif size < HEADER_BYTES + slots * stride:
            problem = (
                f"{path} is truncated ({size} bytes, expected {HEADER_BYTES + slots * stride})"
            )
        if problem:
            mm.close()
            raise FrameRingError(f"{where}: {problem}")
        return cls(_Mapped(name, path, mm))

    def read(self, timeout_s: float, max_lag: int = 0) -> RingFrame:
        """The oldest frame not yet read, unless the writer is more than
        ``max_lag`` frames ahead of it: then the one ``max_lag`` behind the
        newest (0: always the newest). Frames skipped are gaps in the camera
        counter. ``TimeoutError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        m = self._m
        lag = min(max(int(max_lag), 0), m.slots - 2)  # the writer may be filling one more
        while True:
            written = int(m.get(_U64, _WRITE_SEQ))
            if written > self._next:
                k = max(self._next, written - 1 - lag)
                got = self._copy(k)
                if got is not None:
                    self._next = k + 1
                    return got
                self.retries += 1
                continue
            if time.monotonic() >= deadline:
                raise TimeoutError(f"frame ring {m.name}: no new frame within {timeout_s:g} s")
            time.sleep(_POLL_S)

    def _copy(self, k: int) -> RingFrame | None:
        """Frame ``k`` if it is intact in its slot during the whole copy."""
        m = self._m
        slot = k % m.slots
        base = m.slot_offset(slot)
        want = 2 * k + 2
        if m.get(_U64, base) != want:
            return None
        image = m.pixels(slot).copy()
        counter, t_s, tick = _SLOT_META.unpack_from(m.mm, base + 8)
        if m.get(_U64, base) != want:
            return None
        return RingFrame(image, int(counter), float(t_s), None if tick < 0 else int(tick))

    def latest_counter(self) -> int | None:
        """The camera counter of the newest complete frame, None if none yet."""
        m = self._m
        for _ in range(100):
            written = int(m.get(_U64, _WRITE_SEQ))
            if written == 0:
                return None
            base = m.slot_offset((written - 1) % m.slots)
            want = 2 * written
            if m.get(_U64, base) == want:
                counter = int(_SLOT_META.unpack_from(m.mm, base + 8)[0])
                if m.get(_U64, base) == want:
                    return counter
        return None

    def request(self, counter: int) -> None:
        """Stepped use: ask the writer for the frame with camera counter ``counter``."""
        self._m.put(_I64, _REQUEST, int(counter))

    def writer_alive(self, stale_s: float = 2.0) -> bool:
        """The writer's process exists and it wrote or beat within ``stale_s``."""
        m = self._m
        pid = int(m.get(_U32, _PID))
        beat = max(float(m.get(_F64, _BEAT)), float(m.get(_F64, _LAST_WRITE)))
        return time.monotonic() - beat < stale_s and _pid_alive(pid)

    def close(self) -> None:
        self._m.close()
