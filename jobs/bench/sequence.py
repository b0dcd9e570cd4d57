"""Benchmark: reading an image sequence (a folder of numbered frames) from an object store.

A frame range of a sequence reads one file per frame. On an object store each request costs a
round trip, so frames fetched one after another cap a range's feed at ``1 / latency`` frames per
second whatever the network does; :func:`colorstyle_core.sequences.read_sequence` fetches
``read_ahead`` files at once (:func:`colorstyle_core.storage.read_many`, concurrent on S3/GCS).
This uploads frames of the shared film as PNGs (640 x 360, grey) to a loopback S3 (moto) behind a
proxy that delays every request by ``--latency-ms``, then times listing the sequence
(:func:`~colorstyle_core.sequences.probe_sequence`) and reading and decoding all its frames
for each ``--read-ahead``; prints frames per second.

    python -m jobs.bench.sequence [--frames 96] [--latency-ms 20] [--read-ahead 1,8,16]

What carries to a real cluster: the request latency (10-50 ms to S3 from inside its region) and
the decode time per frame (here PNG, 640 x 360); on 2K scans the decode dominates sooner.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from fractions import Fraction

from PIL import Image

from colorstyle_core.sequences import probe_sequence, read_sequence
from colorstyle_core.video import probe, read_frames
from jobs.bench import SHARED_DATA
from jobs.bench.scale import BUCKET, LoopbackS3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--frames", type=int, default=96, help="frames in the sequence (default 96)")
    p.add_argument("--latency-ms", type=float, default=20.0, help="delay per S3 request (default 20)")
    p.add_argument("--read-ahead", default="1,8,16", help="files fetched at once, compared (default 1,8,16)")
    args = p.parse_args(argv)
    import s3fs

    film = str(SHARED_DATA / "video" / "dev_kenburns_gray.mp4")
    info = probe(film, film)
    frames = [rgb[..., 0] for _, rgb in read_frames(film, info, 0, info.frame_count, film)]
    s3 = LoopbackS3(args.latency_ms)
    try:
        fs = s3fs.S3FileSystem(**s3.options, skip_instance_cache=True)
        prefix = f"{BUCKET}/scans/reel1"
        for i in range(args.frames):
            buf = io.BytesIO()
            Image.fromarray(frames[i % len(frames)]).save(buf, "PNG")
            fs.pipe_file(f"{prefix}/frame_{i + 1:06d}.png", buf.getvalue())
        uri = f"s3://{prefix}"
        start = time.perf_counter()
        seq = probe_sequence(uri, Fraction(24), s3.options)
        listed = time.perf_counter() - start
        print(f"sequence of {seq.frame_count} frames ({seq.width}x{seq.height} PNG), {args.latency_ms:g} ms per "
              f"request, load average {os.getloadavg()[0]:.2f}")
        print(f"  listed and probed in {listed:.3f} s")
        for ahead in (int(v) for v in args.read_ahead.split(",")):
            start = time.perf_counter()
            count = sum(1 for _ in read_sequence(seq, 0, seq.frame_count, s3.options, read_ahead=ahead))
            seconds = time.perf_counter() - start
            print(f"  read_ahead {ahead:3d}: {count / seconds:7.1f} frames/s ({1000 * seconds / count:.1f} ms per "
                  "frame, read + decode)")
    finally:
        s3.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
