"""Test media built from the shared data: videos with audio tracks, and broken files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from colorstyle_core.segments import SegmentWriter
from colorstyle_core.video import probe, read_frames


def mux_sine_audio(src: Path, dst: Path, *, codec: str = "aac", container: str = "mp4",
                   frames: int | None = None) -> None:
    """Copy ``src``'s video packets (the first ``frames``) into ``dst`` and add a 440 Hz stereo track."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=container) as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        packets = [p for p in inp.demux(vin) if p.dts is not None]
        if frames is not None:
            keep = sorted(p.pts for p in packets)[:frames]
            packets = [p for p in packets if p.pts in set(keep)]
        seconds = len(packets) / float(vin.average_rate)
        rate = 48000 if codec == "aac" else 44100
        aout = out.add_stream(codec, rate=rate)
        aout.layout = "stereo"
        fmt = "fltp" if codec == "aac" else "s16"
        n = int(seconds * rate)
        t = np.arange(n) / rate
        sig = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        audio_packets = []
        for i in range(0, n, 1024):
            x = sig[i : i + 1024]
            if fmt == "fltp":
                arr = np.stack([x, x])
            else:
                arr = (np.stack([x, x]).T.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout="stereo")
            frame.sample_rate = rate
            frame.pts = i
            audio_packets += list(aout.encode(frame))
        audio_packets += list(aout.encode(None))
        for p in packets:
            p.stream = vout
            out.mux(p)
        for p in audio_packets:
            out.mux(p)


def audio_packet_payloads(path: Path) -> list[bytes]:
    """The raw bytes of every audio packet, in order (to prove a stream was copied unchanged)."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video as ``(H, W, 3)`` uint8."""
    info = probe(str(path), str(path))
    return [f for _, f in read_frames(str(path), info, 0, info.frame_count, str(path))]


def write_bad_inputs(root: Path, shared: Path) -> dict[str, str]:
    """Broken and unusual files; returns ``{name: what should happen}``."""
    root.mkdir(parents=True, exist_ok=True)
    photo = Image.open(shared / "data" / "gray" / "coffee.jpg")
    (root / "zero_bytes.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("meeting notes, not a photo\n")
    jpeg = (shared / "data" / "gray" / "chelsea_cat.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    small = photo.resize((96, 64))
    arr16 = (np.asarray(small, dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(arr16).save(root / "sixteen_bit.png")  # uint16 -> mode I;16
    rgba = small.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((96, 64)))
    rgba.save(root / "alpha.png")
    small.convert("RGB").quantize(64).save(root / "palette.png")
    small.save(root / "good.jpg")
    video = shared / "data" / "video" / "dev_kenburns_gray.mp4"
    data = video.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    info = probe(str(video), str(video))
    with SegmentWriter(str(root / "tmp.mkv"), info) as w:
        for i, f in read_frames(str(video), info, 0, 6, str(video)):
            w.write(f, i)
    mkv = (root / "tmp.mkv").read_bytes()
    (root / "tmp.mkv").unlink()
    (root / "unknown_codec.mkv").write_bytes(mkv.replace(b"V_MPEG4/ISO/AVC", b"V_ZZZZZ/ISO/ZZZ"))
    return {
        "zero_bytes.jpg": "ImageDecodeError",
        "notes.jpg": "ImageDecodeError",
        "truncated.jpg": "ImageDecodeError",
        "sixteen_bit.png": "ok",
        "alpha.png": "ok",
        "palette.png": "ok",
        "good.jpg": "ok",
        "truncated.mp4": "VideoError",
        "unknown_codec.mkv": "VideoError",
    }


def long_mp4(src: Path, dst: Path, repeats: int) -> int:
    """``src``'s video packets copied ``repeats`` times one after the other into the MP4 ``dst`` (a long film
    without encoding anything); returns its frame count."""
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        packets = [(p.pts, p.dts, p.is_keyframe, bytes(p)) for p in inp.demux(vin) if p.size]
        span = max(p[0] for p in packets) - min(p[0] for p in packets) + (packets[1][1] - packets[0][1])
        with av.open(str(src)) as again, av.open(str(dst), "w", format="mp4") as out:
            vout = out.add_stream_from_template(again.streams.video[0])
            for k in range(repeats):
                for pts, dts, key, data in packets:
                    packet = av.Packet(data)
                    packet.pts, packet.dts = pts + k * span, dts + k * span
                    packet.is_keyframe = key
                    packet.time_base = vin.time_base
                    packet.stream = vout
                    out.mux(packet)
    return repeats * len(packets)


def avi_with_wrong_frame_count(src: Path, dst: Path, claimed: int, frames: int | None = None) -> int:
    """The first ``frames`` frames of ``src`` (all by default) re-encoded (MJPEG) into the AVI ``dst`` whose headers
    (``avih`` total frames, ``strh`` length) claim ``claimed`` frames; returns the frames it really holds."""
    info = probe(str(src), str(src))
    count = min(frames or info.frame_count, info.frame_count)
    with av.open(str(dst), "w", format="avi") as out:
        stream = out.add_stream("mjpeg", rate=info.average_rate)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuvj420p"
        for _, rgb in read_frames(str(src), info, 0, count, str(src)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = bytearray(dst.read_bytes())
    avih = data.find(b"avih")
    data[avih + 8 + 16: avih + 8 + 20] = claimed.to_bytes(4, "little")  # dwTotalFrames
    strh = data.find(b"strh")
    data[strh + 8 + 32: strh + 8 + 36] = claimed.to_bytes(4, "little")  # dwLength
    dst.write_bytes(bytes(data))
    return count


def write_scans(folder: Path, shared: Path, count: int = 12, first: int = 9) -> list[np.ndarray]:
    """``count`` grey frames of the dev film as scans named ``scan_<n>`` from ``first``, unpadded (so name order
    is not frame order): 16-bit TIFFs, 8-bit PNGs and JPEGs in turn. Returns their 8-bit grey pixels."""
    folder.mkdir(parents=True)
    out = []
    for i, rgb in enumerate(decoded_frames(shared / "data" / "video" / "dev_kenburns_gray.mp4")[:count]):
        grey = rgb[::4, ::4, 0].copy()  # 160 x 90
        name = f"scan_{first + i}"
        if i % 3 == 0:
            Image.fromarray(grey.astype(np.uint16) * 257).save(folder / f"{name}.tif")
        elif i % 3 == 1:
            Image.fromarray(grey).save(folder / f"{name}.png")
        else:
            Image.fromarray(grey).save(folder / f"{name}.jpg", quality=100)
        out.append(grey)
    return out
