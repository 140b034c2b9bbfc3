"""How a finished episode stores one camera's frames, with cheap random access.

Codecs, measured by ``python -m rlpost.data.image_bench`` (200 frames, 2 shared cores;
KB per frame, then ms to read one random frame; "render" = flat-shaded sim frames,
"camera" = the same plus sensor noise):

    size/frames      raw (mmap)     zstd-3        png-1         av1 mp4 (lossy)
    64  render       12.0 / 0.03    4.6 / 0.09    1.1 / 0.29    0.1 / 1.5
    64  camera       12.0 / 0.02   10.5 / 0.06    7.9 / 0.30    0.2 / 1.4
    224 render      147.0 / 0.17    8.0 / 0.33    4.8 / 1.34    0.3 / 2.0
    224 camera      147.0 / 0.14  124.1 / 0.50   96.3 / 2.29    0.4 / 2.5

- ``zstd`` (default): ``images/<cam>.zst`` (per-frame zstd blobs, back to back) plus
  ``images/<cam>.offsets.npy`` int64 [T + 1]. Lossless; 2.6x (64 px) to 18x (224 px)
  smaller than raw on rendered frames, ~1.2x on noisy camera frames; a random frame
  decodes in under 0.6 ms, small next to a backbone forward pass.
- ``raw``: ``images/<cam>.npy``, uint8 [T, h, w, 3], memory-mapped. Fastest random
  access (2-4x zstd), largest files: choose it when disk is plentiful and reads dominate.
- ``png``: the zstd container with PNG blobs; lossless and portable, 3-5x slower to read.

Video is not a store codec: it is lossy (mean error 1.5-4 levels, single pixels off by
150+ at colour edges from 4:2:0 chroma), and a random frame costs 1.5-2.5 ms (open,
seek to a keyframe, decode). Lossless h264rgb is no smaller than zstd on noisy frames
and 10-60x slower to read. Video is used for LeRobot export, where it is the standard.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pyarrow as pa
from PIL import Image

from rlpost.data.store_error import StoreError

ImageCodec = Literal["raw", "zstd", "png"]
IMAGE_CODECS: tuple[str, ...] = get_args(ImageCodec)
ZSTD_LEVEL = 3  # level 1..3 are about equally fast to decode; 3 is zstd's default trade-off
_ZSTD = pa.Codec("zstd", compression_level=ZSTD_LEVEL)


def encode_frame(frame: np.ndarray, codec: ImageCodec) -> bytes:
    """One uint8 [h, w, 3] frame as a ``zstd`` or ``png`` blob."""
    if codec == "zstd":
        return _ZSTD.compress(np.ascontiguousarray(frame), asbytes=True)
    if codec == "png":
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    raise ValueError(f"codec {codec!r} has no per-frame blobs; choose one of {list(IMAGE_CODECS)}")


def decode_frame(
    blob: bytes | memoryview, codec: ImageCodec, shape: tuple[int, int, int], where: str
) -> np.ndarray:
    """Decode one blob back to uint8 ``shape``.

    Raises:
        StoreError: the blob does not decode to ``shape`` (names ``where``).
    """
    try:
        if codec == "zstd":
            n = int(np.prod(shape))
            out = np.frombuffer(_ZSTD.decompress(blob, decompressed_size=n, asbytes=True), np.uint8)
            return out.reshape(shape)
        arr = np.asarray(Image.open(io.BytesIO(bytes(blob))).convert("RGB"))
    except (OSError, ValueError, pa.ArrowException) as e:
        raise StoreError(f"{where}: frame does not decode with {codec}: {e}") from e
    if arr.shape != shape:
        raise StoreError(f"{where}: frame decodes to shape {arr.shape}, expected {shape}")
    return arr


def frame_files(cam: str, codec: ImageCodec) -> list[str]:
    """Relative paths (inside an episode directory) that hold camera ``cam``."""
    if codec == "raw":
        return [f"images/{cam}.npy"]
    return [f"images/{cam}.{'zst' if codec == 'zstd' else 'png'}", f"images/{cam}.offsets.npy"]


def write_frames(ep_dir: Path, cam: str, frames: np.ndarray, codec: ImageCodec) -> list[str]:
    """Write one camera's uint8 [T, h, w, 3] frames into ``ep_dir`` (not fsynced).

    Returns:
        The relative paths written, as :func:`frame_files` names them.
    """
    rel = frame_files(cam, codec)
    (ep_dir / "images").mkdir(exist_ok=True)
    if codec == "raw":
        np.save(ep_dir / rel[0], np.ascontiguousarray(frames), allow_pickle=False)
        return rel
    blobs = [encode_frame(f, codec) for f in frames]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    (ep_dir / rel[0]).write_bytes(b"".join(blobs))
    np.save(ep_dir / rel[1], offsets, allow_pickle=False)
    return rel


class FrameReader:
    """Random access to one camera's frames of one finished episode (memory-mapped)."""

    def __init__(self, ep_dir: Path, cam: str, codec: ImageCodec, shape: tuple[int, int, int], length: int):
        """Open the camera's files and check their sizes against the episode meta.

        Raises:
            StoreError: a file is missing, truncated, or disagrees with the meta.
        """
        self.codec, self.shape, self.length = codec, shape, length
        rel = frame_files(cam, codec)
        self._where = str(ep_dir / rel[0])
        if codec == "raw":
            self._frames = load_npy(ep_dir / rel[0], np.uint8, (length, *shape))
            return
        self._offsets = load_npy(ep_dir / rel[1], np.int64, (length + 1,))
        blob_path = ep_dir / rel[0]
        size = blob_path.stat().st_size if blob_path.exists() else -1
        if size != int(self._offsets[-1]) or np.any(np.diff(self._offsets) < 0):
            raise StoreError(f"{blob_path}: has {size} bytes, its offsets file says {int(self._offsets[-1])}")
        self._blobs = np.memmap(blob_path, dtype=np.uint8, mode="r") if size > 0 else np.zeros(0, np.uint8)

    def read(self, indices: np.ndarray) -> np.ndarray:
        """uint8 [len(indices), h, w, 3] for frame ``indices`` (already bounds-checked)."""
        if self.codec == "raw":
            return np.asarray(self._frames[indices])
        out = np.empty((len(indices), *self.shape), dtype=np.uint8)
        for j, i in enumerate(indices):
            lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
            out[j] = decode_frame(
                memoryview(self._blobs[lo:hi]), self.codec, self.shape, f"{self._where} frame {int(i)}"
            )
        return out


def load_npy(path: Path, dtype: type | np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Memory-map a ``.npy`` file and check its dtype and shape.

    Raises:
        StoreError: missing, truncated, unreadable header, or wrong dtype/shape; names ``path``.
    """
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError as e:
        raise StoreError(f"{path}: file is missing") from e
    except (ValueError, OSError, EOFError) as e:
        raise StoreError(f"{path}: truncated or corrupt .npy file: {e}") from e
    if arr.dtype != np.dtype(dtype) or arr.shape != shape:
        raise StoreError(f"{path}: holds {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {shape}")
    return arr
