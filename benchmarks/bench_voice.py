"""Voice messages: how fast SILK decodes to WAV, and what a voice message adds to handling it.

1. Decoding: N synthetic voice messages of S seconds (a SILK file made with the same library, as WeChat writes
   it) through ``bot.voice.silk_to_wav`` in one process: messages/s, audio seconds decoded per second, peak
   memory (tracemalloc) of one decode.
2. Ingest: M voice messages through the real pipeline (``Ingest.handle``: store the file, decode, the voice note
   row, classify) on SQLite, against M text messages: messages/s of each.

Usage: .venv/bin/python benchmarks/bench_voice.py [--messages 200] [--seconds 10] [--ingest 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.clock import CHINA, SimulatedClock
from bot.config import load_config
from bot.messages import IncomingMessage, MessageKind
from bot.services import build_services
from bot.voice import silk_to_wav
from tests.voice.samples import silk_voice

ROOT = Path(__file__).resolve().parents[1]


def bench_decode(count: int, seconds: float) -> None:
    data = silk_voice(seconds)
    tracemalloc.start()
    silk_to_wav(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    for _ in range(count):
        silk_to_wav(data)
    elapsed = time.perf_counter() - start
    print(f"decode: {count} × {seconds:.0f} s voice ({len(data)} bytes SILK) in {elapsed:.2f} s")
    print(f"  {count / elapsed:.1f} messages/s, {count * seconds / elapsed:.0f} audio s/s, peak {peak / 1e6:.1f} MB")


async def bench_ingest(count: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = load_config(ROOT / "config.example.toml").model_copy(update={"data_dir": folder / "data"})
        at = datetime(2026, 9, 7, 9, 0, tzinfo=CHINA)
        services = await build_services(
            config, clock=SimulatedClock(at), db_url=f"sqlite+aiosqlite:///{folder / 'b.db'}", media_root=folder / "m"
        )
        try:
            voices = [silk_voice(seconds, pitch=120 + i * 0.5) for i in range(count)]  # each a new file
            for kind in ("text", "voice"):
                start = time.perf_counter()
                for i in range(count):
                    media = voices[i] if kind == "voice" else None
                    await services.ingest.handle(
                        IncomingMessage(
                            platform_id=f"{kind}-{i}",
                            account="demo",
                            at=at,
                            kind=MessageKind.VOICE if kind == "voice" else MessageKind.TEXT,
                            text="" if kind == "voice" else "今天下午村部开会,大家准时参加",
                            sender_id="高某林",
                            sender_name="高某林",
                            group_id="石桥村监督服务群",
                            group_topic="石桥村监督服务群",
                            attachment_name="语音.silk" if kind == "voice" else None,
                            media=media,
                        )
                    )
                elapsed = time.perf_counter() - start
                print(f"ingest {kind}: {count} messages in {elapsed:.2f} s = {count / elapsed:.1f} msg/s")
        finally:
            await services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ingest", type=int, default=200)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    bench_decode(args.messages, args.seconds)
    asyncio.run(bench_ingest(args.ingest, args.seconds))


if __name__ == "__main__":
    main()
