"""Text in images (issue 14): OCR speed and memory on this machine, and replay throughput with OCR off and on.

1. OCR in one process (what one worker does): images/s and per-image time on rendered invitation cards, a
   notice and a phone-sized photo of a notice (3000×4000, scaled to ``max_side`` first), and that process's
   peak resident memory (VmHWM), models included.
2. The OCR pool with 1 and 2 workers: images/s over the same images, and each worker's peak memory.
3. `replay` throughput on a script of N messages, a share of them images (cards, notices, photos without
   text): with `[ocr] enabled = false` (images stored, not read) and with OCR on (each image read at its
   time, as a replay does), on SQLite.

Usage: .venv/bin/python benchmarks/bench_ocr.py [--images 12] [--messages 1000] [--image-share 0.02]
Each phase runs in a child process of its own so that its peak memory is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.clock import CHINA  # noqa: E402
from tests.ocr import images  # noqa: E402

GROUP = "石桥村监督服务群"


def _vmhwm(pid: int | str = "self") -> float:
    """Peak resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def samples() -> list[tuple[str, bytes]]:
    from PIL import Image

    big = Image.open(io.BytesIO(images.notice())).resize((3000, 4000))
    out = io.BytesIO()
    big.save(out, "JPEG", quality=88)
    return [
        ("card (gold)", images.invitation_card(images.PARTY_CARD, ink=images.GOLD)),
        ("card (black)", images.invitation_card(images.WEDDING_CARD, ink=images.BLACK)),
        ("notice", images.notice()),
        ("photo 3000x4000", out.getvalue()),
    ]


def phase_single(count: int) -> dict[str, object]:
    from bot.ocr import reader

    t0 = time.perf_counter()
    reader.warm_up()
    load = time.perf_counter() - t0
    pictures = samples()
    per_kind: dict[str, list[float]] = {name: [] for name, _ in pictures}
    start = time.perf_counter()
    done = 0
    while done < count:
        for name, data in pictures:
            t = time.perf_counter()
            reading = reader.read_image(data, max_pixels=40_000_000, max_side=2048)
            assert reading.status == reader.DONE, reading
            per_kind[name].append(time.perf_counter() - t)
            done += 1
    elapsed = time.perf_counter() - start
    return {
        "model_load_s": round(load, 2),
        "images": done,
        "images_per_s": round(done / elapsed, 2),
        "median_s": {name: round(statistics.median(v), 2) for name, v in per_kind.items()},
        "peak_rss_mb": round(_vmhwm(), 1),
    }


def phase_pool(workers: int, count: int) -> dict[str, object]:
    from bot.ocr.pool import OcrPool

    async def go() -> dict[str, object]:
        pool = OcrPool(workers=workers, timeout=300, max_pixels=40_000_000, max_side=2048, memory_mb=2048)
        await pool.warm_up()
        pictures = [data for _, data in samples()]
        start = time.perf_counter()
        readings = await asyncio.gather(*(pool.read(pictures[i % len(pictures)]) for i in range(count)))
        elapsed = time.perf_counter() - start
        assert all(r.status == "done" for r in readings)
        peaks = [
            round(_vmhwm(p.pid), 1) for slot in pool._slots for p in getattr(slot.executor, "_processes", {}).values()
        ]
        pool.close()
        return {
            "workers": workers,
            "images": count,
            "images_per_s": round(count / elapsed, 2),
            "worker_peak_rss_mb": peaks,
        }

    return asyncio.run(go())


def make_script(folder: Path, count: int, share: float) -> Path:
    rng = random.Random(14)
    pictures = {f"img{i}.jpg": data for i, (_, data) in enumerate(samples()[:3])}
    from PIL import Image

    noise = io.BytesIO()
    Image.effect_noise((800, 600), 40).convert("RGB").save(noise, "JPEG")
    pictures["plain.jpg"] = noise.getvalue()  # a photo with no text (a repaired pipe)
    for name, data in pictures.items():
        (folder / name).write_bytes(data)
    chat = ["大家早上好", "收到", "好的谢谢", "明天赶集吗", "路灯坏了一个多星期了有人管没有", "辛苦了"]
    start = datetime(2026, 11, 10, 8, 0, tzinfo=CHINA)
    lines = [{"kind": "member", "group": GROUP, "name": "刘建国", "role": "party_member", "village": "石桥村"}]
    for index in range(count):
        line: dict[str, object] = {
            "kind": "message",
            "at": (start + timedelta(seconds=20 * index)).isoformat(),
            "group": GROUP,
            "sender": rng.choice(["高某林", "张大妈", "刘建国"]),
        }
        if rng.random() < share:
            line["image"] = rng.choice(sorted(pictures))
        else:
            line["text"] = rng.choice(chat)
        lines.append(line)
    script = folder / "script.jsonl"
    script.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return script


def phase_replay(count: int, share: float, ocr: bool) -> dict[str, object]:
    from bot.config import load_config
    from bot.replay import run_replay

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = make_script(folder, count, share)
        images_in = sum(1 for line in script.read_text().splitlines() if '"image"' in line)
        config = load_config(ROOT / "config.example.toml")
        config = config.model_copy(
            update={"data_dir": folder / "data", "ocr": config.ocr.model_copy(update={"enabled": ocr})}
        )
        db = f"sqlite+aiosqlite:///{folder / 'db.sqlite'}"
        start = time.perf_counter()
        asyncio.run(run_replay(script, config=config, db_url=db, transcript=io.StringIO(), media_root=folder / "m"))
        elapsed = time.perf_counter() - start
    return {
        "ocr": ocr,
        "messages": count,
        "images": images_in,
        "seconds": round(elapsed, 1),
        "messages_per_s": round(count / elapsed, 1),
        "peak_rss_mb": round(_vmhwm(), 1),
    }


def child(args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--image-share", type=float, default=0.02)
    parser.add_argument("--phase", nargs="*")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        if name == "single":
            result = phase_single(int(rest[0]))
        elif name == "pool":
            result = phase_pool(int(rest[0]), int(rest[1]))
        else:
            result = phase_replay(int(rest[0]), float(rest[1]), rest[2] == "on")
        print(json.dumps(result, ensure_ascii=False))
        return
    print(f"load average before: {os.getloadavg()}", flush=True)
    print("single process:", child(["single", str(args.images)]), flush=True)
    for workers in (1, 2):
        print("pool:", child(["pool", str(workers), str(args.images)]), flush=True)
    for ocr in ("off", "on"):
        print("replay:", child(["replay", str(args.messages), str(args.image_share), ocr]), flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
