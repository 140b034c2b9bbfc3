"""mp4 video of camera frames through PyAV (which bundles FFmpeg), for LeRobot files and benchmarks.

Codecs:
- ``av1``: libsvtav1, yuv420p, crf 30, keyframe every 2 frames: LeRobot's default. Lossy:
  4:2:0 chroma subsampling alone moves pixels by tens of levels at sharp colour edges.
- ``h264``: libx264, yuv420p, crf 23, keyframe every 2 frames. Lossy, widely playable.
- ``h264_lossless``: libx264rgb, rgb24, qp 0: bit-exact RGB, still an mp4 that
  FFmpeg-based readers (LeRobot's torchcodec/pyav backends) decode.
A short keyframe interval keeps random access cheap: one frame costs at most one
extra decoded frame, which is why LeRobot uses it too.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Literal, get_args

import av
import numpy as np

from rlpost.data.store_error import StoreError

VideoCodec = Literal["av1", "h264", "h264_lossless"]
VIDEO_CODECS: tuple[str, ...] = get_args(VideoCodec)

# codec -> (FFmpeg encoder, pix_fmt, encoder options)
_ENCODERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "av1": ("libsvtav1", "yuv420p", {"crf": "30", "g": "2"}),
    "h264": ("libx264", "yuv420p", {"crf": "23", "g": "2"}),
    "h264_lossless": ("libx264rgb", "rgb24", {"qp": "0", "g": "2"}),
}


def video_feature_info(codec: VideoCodec, fps: int, shape: tuple[int, int, int]) -> dict[str, object]:
    """The ``info`` block LeRobot stores for a video feature in ``meta/info.json``."""
    name, pix_fmt, _ = _ENCODERS[codec]
    return {
        "video.height": shape[0],
        "video.width": shape[1],
        "video.codec": {"libsvtav1": "av1", "libx264": "h264", "libx264rgb": "h264"}[name],
        "video.pix_fmt": pix_fmt,
        "video.is_depth_map": False,
        "video.fps": fps,
        "video.channels": shape[2],
        "has_audio": False,
    }


def encode_video(path: Path, frames: np.ndarray, fps: int, codec: VideoCodec) -> None:
    """Encode uint8 [T, h, w, 3] frames to an mp4 at ``path``; frame i has pts i (time i / fps).

    Raises:
        ValueError: unknown codec, or frames not uint8 [T, h, w, 3] with even h and w
            where the codec subsamples chroma.
    """
    if codec not in _ENCODERS:
        raise ValueError(f"video codec {codec!r} is not one of {list(VIDEO_CODECS)}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, h, w, 3], got {frames.dtype} {frames.shape}")
    name, pix_fmt, options = _ENCODERS[codec]
    # SVT-AV1 prints a banner to stderr per encoder unless told otherwise; a user's own setting wins.
    os.environ.setdefault("SVT_LOG", "1")
    h, w = frames.shape[1:3]
    if pix_fmt == "yuv420p" and (h % 2 or w % 2):
        raise ValueError(f"{codec} needs even frame sizes, got {h}x{w}; use h264_lossless")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(name, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.time_base = Fraction(1, fps)
        stream.options = dict(options)
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_video(path: Path, fps: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames ``start:stop`` (by pts = frame number at ``fps``) as uint8 [n, h, w, 3].

    Seeks to the keyframe before ``start`` so reading a late episode of a long file
    does not decode the whole file.

    Raises:
        StoreError: the file is missing or unreadable, or holds fewer frames than asked.
    """
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            if start > 0:
                container.seek(int(Fraction(start, fps) / tb), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                i = round(float(frame.pts * tb) * fps) if frame.pts is not None else start + len(out)
                if i < start:
                    continue
                if stop is not None and i >= stop:
                    break
                out.append(frame.to_ndarray(format="rgb24"))
    except (OSError, av.FFmpegError) as e:
        raise StoreError(f"{path}: video does not decode: {e}") from e
    if stop is not None and len(out) != stop - start:
        raise StoreError(f"{path}: expected frames {start}..{stop - 1}, decoded {len(out)}")
    if not out:
        raise StoreError(f"{path}: no frames decoded from {start}")
    return np.stack(out)
