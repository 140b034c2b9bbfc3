"""Measure image storage choices for the episode store: bytes, write speed, random-frame reads.

Run ``python -m rlpost.data.image_bench`` (options: ``--frames``, ``--sizes``, ``--json``).
It writes one episode of synthetic frames per option and size, then reads random single
frames the way a training sampler does. Two kinds of frames: ``render`` (a flat-shaded
tabletop scene with moving objects, like the built-in sims) and ``camera`` (the same
with Gaussian sensor noise, sigma 4 levels, like a real camera). Ratios between rows of
one run are what to compare; absolute times depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rlpost.data.image_codec import FrameReader, write_frames
from rlpost.data.video_codec import decode_video, encode_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchRow:
    """One storage option at one frame size."""

    option: str
    size: int  # frames are size x size x 3
    frames: str  # "render" or "camera"
    bytes_per_frame: float
    write_ms_per_frame: float
    read_ms_per_random_frame: float
    max_abs_pixel_error: int  # 0: lossless
    mean_abs_pixel_error: float  # over all pixels of the frames read


def synthetic_frames(n: int, size: int, noise: float, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 3]: shaded table, a moving block and a moving disc, optional noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.55 + 0.2 * yy, 0.45 + 0.15 * xx, 0.35 + 0.1 * yy * xx], -1) * 255
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for t in range(n):
        img = base.copy()
        cx, cy = 0.3 + 0.4 * np.sin(t / 20), 0.5 + 0.3 * np.cos(t / 31)
        block = (np.abs(xx - cx) < 0.08) & (np.abs(yy - cy) < 0.08)
        img[block] = (200, 40, 40)
        disc = (xx - 0.7 + 0.2 * np.cos(t / 17)) ** 2 + (yy - 0.3) ** 2 < 0.01
        img[disc] = (40, 60, 200)
        if noise > 0:
            img = img + rng.normal(0, noise, img.shape)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _bench_store_codec(
    codec: str, frames: np.ndarray, tmp: Path, picks: np.ndarray
) -> tuple[float, float, float, int]:
    ep = tmp / codec
    ep.mkdir()
    t0 = time.perf_counter()
    files = write_frames(ep, "cam", frames, codec)  # type: ignore[arg-type]
    write_s = time.perf_counter() - t0
    nbytes = sum((ep / f).stat().st_size for f in files)
    reader = FrameReader(ep, "cam", codec, frames.shape[1:], len(frames))  # type: ignore[arg-type]
    t0 = time.perf_counter()
    errs = []
    for i in picks:
        got = reader.read(np.array([i]))[0]
        errs.append(np.abs(got.astype(np.int16) - frames[i]))
    read_s = time.perf_counter() - t0
    return nbytes, write_s, read_s, np.stack(errs)


def _bench_video(codec: str, frames: np.ndarray, tmp: Path, picks: np.ndarray, fps: int = 30):
    path = tmp / f"{codec}.mp4"
    t0 = time.perf_counter()
    encode_video(path, frames, fps, codec)  # type: ignore[arg-type]
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    errs = []
    for i in picks:
        # Open, seek, decode: what a sampler pays for a random (episode, t) pair.
        got = decode_video(path, fps, int(i), int(i) + 1)[0]
        errs.append(np.abs(got.astype(np.int16) - frames[i]))
    read_s = time.perf_counter() - t0
    return path.stat().st_size, write_s, read_s, np.stack(errs)


def run(n_frames: int = 200, sizes: tuple[int, ...] = (64, 224), n_reads: int = 100) -> list[BenchRow]:
    """Measure every option at every size on both kinds of frames.

    Returns:
        One BenchRow per (option, size, frame kind).
    """
    rows = []
    picks = np.random.default_rng(1).integers(0, n_frames, n_reads)
    for size in sizes:
        for kind, noise in (("render", 0.0), ("camera", 4.0)):
            frames = synthetic_frames(n_frames, size, noise)
            with tempfile.TemporaryDirectory() as d:
                tmp = Path(d)
                options = [
                    ("raw npy (mmap)", "raw", _bench_store_codec),
                    ("zstd-3 raw", "zstd", _bench_store_codec),
                ]
                options += [
                    ("png level 1", "png", _bench_store_codec),
                    ("mp4 av1 crf30 g2", "av1", _bench_video),
                ]
                options += [("mp4 h264 crf23 g2", "h264", _bench_video)]
                options += [("mp4 h264rgb lossless", "h264_lossless", _bench_video)]
                for label, codec, fn in options:
                    nbytes, write_s, read_s, err = fn(codec, frames, tmp, picks)
                    per_frame = (nbytes / n_frames, 1e3 * write_s / n_frames, 1e3 * read_s / n_reads)
                    rows.append(BenchRow(label, size, kind, *per_frame, int(err.max()), float(err.mean())))
                    log.info("%s", rows[-1])
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """A markdown table of the rows."""
    head = "| option | size | frames | KB/frame | write ms/frame | random read ms/frame | pixel error mean / max |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.option} | {r.size} | {r.frames} | {r.bytes_per_frame / 1024:.1f} | "
            f"{r.write_ms_per_frame:.3f} | {r.read_ms_per_random_frame:.3f} | "
            f"{r.mean_abs_pixel_error:.2f} / {r.max_abs_pixel_error} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: print the table, optionally write the rows as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    p.add_argument("--reads", type=int, default=100)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows = run(args.frames, tuple(args.sizes), args.reads)
    table = format_table(rows)
    print(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    main()
