"""Media benchmark: upload and download throughput, thumbnail latency, for any homeserver.

mxbench has no media workload, so this is its own small client (aiohttp; run it with
/opt/bench-venv/bin/python, which has aiohttp and Pillow):

    python bench/media_bench.py --url http://127.0.0.1:8118 --label trellis-sqlite

1. Registers a fresh user (POST /register, m.login.dummy).
2. Makes --images distinct images beforehand (half JPEG, half PNG, each about --kb KB,
   1024x768, so every recommended thumbnail size applies), outside any timing.
3. Uploads them all (POST /_matrix/media/v3/upload, --concurrency at a time): uploads/s, MB/s;
   then waits --settle-s seconds (default 30) for background thumbnailing to finish.
4. Downloads them all (GET /_matrix/client/v1/media/download): downloads/s, MB/s, and checks
   every body is byte-identical to what was uploaded.
5. Asks each image's thumbnails one request at a time: 96x96 crop, then 320x240 scale, each
   twice ("first" and "cached"); p50/p95 latency per kind. Every thumbnail must decode as an
   image no smaller than asked (unless the original is smaller).

Prints a table and writes one JSON line to --out (default bench/results/media-<label>.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

WIDTH, HEIGHT = 1024, 768


def make_image(index: int, kb: int) -> tuple[bytes, str]:
    """A distinct 1024x768 image of roughly ``kb`` KB: a gradient with a noisy band."""
    rng = random.Random(index)
    img = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    band_height = 64
    noise = Image.frombytes("RGB", (WIDTH, band_height), rng.randbytes(WIDTH * band_height * 3))
    fmt = "JPEG" if index % 2 == 0 else "PNG"
    # Grow the noisy band until the file reaches the wanted size.
    for rows in range(1, HEIGHT // band_height + 1):
        for r in range(rows):
            img.paste(noise, (0, r * band_height))
        out = io.BytesIO()
        img.save(out, fmt, **({"quality": 85} if fmt == "JPEG" else {"compress_level": 1}))
        if out.tell() >= kb * 1024:
            break
    return out.getvalue(), "image/jpeg" if fmt == "JPEG" else "image/png"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def register(session: aiohttp.ClientSession, url: str) -> str:
    body: dict[str, Any] = {"username": f"media_{secrets.token_hex(4)}", "password": "bench-pw"}
    async with session.post(f"{url}/_matrix/client/v3/register", json=body) as response:
        first = await response.json()
    body["auth"] = {"type": "m.login.dummy", "session": first.get("session")}
    async with session.post(f"{url}/_matrix/client/v3/register", json=body) as response:
        done = await response.json()
        if response.status != 200:
            raise SystemExit(f"registration failed: {response.status} {done}")
    return str(done["access_token"])


async def run_pool(jobs: list[Any], concurrency: int) -> list[Any]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(job: Any) -> Any:
        async with semaphore:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--kb", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--settle-s",
        type=float,
        default=30.0,
        help="pause between the uploads and the downloads (background thumbnailing)",
    )
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    url = args.url.rstrip("/")

    started = time.perf_counter()
    images = [make_image(i, args.kb) for i in range(args.images)]
    total_bytes = sum(len(data) for data, _ in images)
    print(
        f"{len(images)} images, {total_bytes / 1e6:.1f} MB "
        f"(made in {time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )

    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        token = await register(session, url)
        auth = {"Authorization": f"Bearer {token}"}
        errors: list[str] = []

        async def upload(data: bytes, content_type: str, n: int) -> str:
            async with session.post(
                f"{url}/_matrix/media/v3/upload?filename=image{n}",
                data=data,
                headers={**auth, "Content-Type": content_type},
            ) as response:
                body = await response.json()
                if response.status != 200:
                    errors.append(f"upload {response.status} {body}")
                    return ""
                return str(body["content_uri"])

        t0 = time.perf_counter()
        uris = await run_pool(
            [upload(d, ct, n) for n, (d, ct) in enumerate(images)], args.concurrency
        )
        upload_s = time.perf_counter() - t0
        # Synapse makes an image's thumbnails inside the upload request; Trellis queues them
        # for its worker. The pause lets background work finish, so the phases below measure
        # serving on both, not serving while the other thumbnails are still being made.
        await asyncio.sleep(args.settle_s)

        async def download(uri: str, expected: bytes) -> int:
            server_media = uri[len("mxc://") :]
            async with session.get(
                f"{url}/_matrix/client/v1/media/download/{server_media}", headers=auth
            ) as response:
                body = await response.read()
                if response.status != 200 or body != expected:
                    errors.append(f"download {response.status} ({len(body)} bytes)")
                return len(body)

        t0 = time.perf_counter()
        sizes = await run_pool(
            [download(u, d) for u, (d, _) in zip(uris, images, strict=True) if u],
            args.concurrency,
        )
        download_s = time.perf_counter() - t0

        latencies: dict[str, list[float]] = {}

        async def thumbnail(uri: str, width: int, height: int, method: str, kind: str) -> None:
            server_media = uri[len("mxc://") :]
            t = time.perf_counter()
            async with session.get(
                f"{url}/_matrix/client/v1/media/thumbnail/{server_media}",
                params={"width": width, "height": height, "method": method},
                headers=auth,
            ) as response:
                body = await response.read()
            latencies.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
            if response.status != 200:
                errors.append(f"thumbnail {kind} {response.status}")
                return
            with Image.open(io.BytesIO(body)) as img:
                if img.width < min(width, WIDTH) and img.height < min(height, HEIGHT):
                    errors.append(f"thumbnail {kind} too small: {img.size}")

        for uri in uris:
            if not uri:
                continue
            await thumbnail(uri, 96, 96, "crop", "96x96 crop, first")
            await thumbnail(uri, 96, 96, "crop", "96x96 crop, cached")
            await thumbnail(uri, 320, 240, "scale", "320x240 scale, first")
            await thumbnail(uri, 320, 240, "scale", "320x240 scale, cached")

    result: dict[str, Any] = {
        "label": args.label,
        "url": url,
        "images": len(images),
        "mb": round(total_bytes / 1e6, 2),
        "concurrency": args.concurrency,
        "settle_s": args.settle_s,
        "uploads_per_s": round(len(images) / upload_s, 1),
        "upload_mb_per_s": round(total_bytes / 1e6 / upload_s, 2),
        "downloads_per_s": round(len(sizes) / download_s, 1),
        "download_mb_per_s": round(sum(sizes) / 1e6 / download_s, 2),
        "thumbnails_ms": {
            kind: {
                "p50": round(percentile(values, 50), 1),
                "p95": round(percentile(values, 95), 1),
                "mean": round(statistics.fmean(values), 1),
            }
            for kind, values in latencies.items()
        },
        "errors": len(errors),
        "error_samples": errors[:5],
    }
    out = Path(args.out or f"bench/results/media-{args.label}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as fp:
        fp.write(json.dumps(result) + "\n")

    print(f"| {args.label} | value |\n|---|---|")
    for key in ("uploads_per_s", "upload_mb_per_s", "downloads_per_s", "download_mb_per_s"):
        print(f"| {key} | {result[key]} |")
    for kind, figures in result["thumbnails_ms"].items():
        print(f"| thumbnail {kind} p50 / p95 ms | {figures['p50']} / {figures['p95']} |")
    print(f"| errors | {len(errors)} |")
    if errors:
        print("error samples:", errors[:5], file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(asyncio.run(main()))
