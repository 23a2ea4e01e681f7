"""What hostile input costs a running `cityops serve` (issue 10, item 6): a burst of logins
with unknown names, and decompression-bomb-like photos (small PNG files of 7000 x 7000
pixels, just under the pixel cap) uploaded in parallel.

    python bench/abuse.py logins [--seconds 20] [--burst 16] [--addresses]
    python bench/abuse.py photos [--parallel 4] [--side 7000]

`logins`: the latency of ordinary authenticated reads (GET /grid-cases, GET /auth/me) alone,
then while `--burst` clients log in with unknown names as fast as they can; the logins'
answers (200/401/429/503) and rate. `photos`: the server's resident memory before, at its
peak (VmHWM) and a few seconds after `--parallel` uploads of the PNG, and their answers.
The server runs embedded in a temporary folder, its own process, as an operator runs it.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "bench-password-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cityops(*args: str, env: dict[str, str], stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "cityops.cli", *args], env=env, input=stdin,
                   text=True, check=True, capture_output=True, timeout=300)


@contextmanager
def server(users: list[tuple[str, str]]) -> Iterator[tuple[str, int]]:
    """A `cityops serve` on a fresh embedded store with these (username, role) users:
    (base URL, process id)."""
    with tempfile.TemporaryDirectory(prefix="cityops-abuse-") as folder:
        env = {**os.environ, "CITYOPS_DATA_DIR": folder}
        env.pop("CITYOPS_DATABASE_URL", None)
        for username, role in users:
            cityops("users", "add", username, "--role", role, "--password-stdin", env=env,
                    stdin=f"{PASSWORD}\n")
        port = free_port()
        with Path(folder, "serve.log").open("w") as log:
            process = subprocess.Popen([sys.executable, "-m", "cityops.cli", "serve",
                                        "--port", str(port)], env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("cityops serve did not start:\n"
                                     + Path(folder, "serve.log").read_text())
                time.sleep(0.3)
            yield base, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def token(base: str, username: str) -> str:
    answer = httpx.post(f"{base}/auth/login", json={"username": username,
                                                    "password": PASSWORD}, timeout=60)
    answer.raise_for_status()
    value: str = answer.json()["access_token"]
    return value


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"n={len(ordered)} median {statistics.median(ordered) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")


def read_latencies(base: str, bearer: str, seconds: float) -> list[float]:
    """Ordinary reads one after the other for `seconds`: their latencies."""
    latencies = []
    headers = {"Authorization": f"Bearer {bearer}"}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
        end = time.monotonic() + seconds
        paths = ("/grid-cases?limit=20", "/auth/me")
        number = 0
        while time.monotonic() < end:
            started = time.perf_counter()
            answer = client.get(paths[number % 2])
            latencies.append(time.perf_counter() - started)
            answer.raise_for_status()
            number += 1
    return latencies


def spray_logins(base: str, burst: int, spread: bool, stop: Any, report: Any) -> None:
    """`burst` threads logging in with made-up names until `stop` is set, then the count of
    each answer's status into `report`. Run in a process of its own, so that its threads
    never compete with the measured reads for the bench's own interpreter."""
    answers: Counter[int] = Counter()
    lock = threading.Lock()
    started = threading.Event()

    def spray(number: int) -> None:
        # From many addresses (127.x.y.z are all this machine), as a botnet would, so that
        # the per-address throttle does not hide the cost of hashing; each address keeps
        # its connection.
        addresses = ([f"127.{1 + number}.{1 + n}.1" for n in range(8)] if spread
                     else ["127.0.0.1"])
        clients: dict[str, httpx.Client] = {}
        attempt = 0
        try:
            while not stop.is_set():
                attempt += 1
                address = addresses[attempt % len(addresses)]
                client = clients.get(address)
                if client is None:
                    client = clients[address] = httpx.Client(
                        base_url=base, timeout=120,
                        transport=httpx.HTTPTransport(local_address=address))
                answer = client.post("/auth/login", json={
                    "username": f"nobody-{number}-{attempt}", "password": "guess-1234"})
                if started.is_set():
                    with lock:
                        answers[answer.status_code] += 1
                if answer.status_code in (429, 503):
                    # A burst of logins, not a flood of requests: told to wait, wait (a
                    # second at most).
                    stop.wait(min(1.0, float(answer.headers.get("Retry-After", 1))))
        finally:
            for client in clients.values():
                client.close()

    threads = [threading.Thread(target=spray, args=(n,)) for n in range(burst)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    started.set()
    for thread in threads:
        thread.join()
    report.put(dict(answers))


def logins(args: argparse.Namespace) -> None:
    import multiprocessing

    with server([("bench-reader", "dispatcher")]) as (base, _):
        bearer = token(base, "bench-reader")
        read_latencies(base, bearer, 2)  # warm up
        alone = read_latencies(base, bearer, args.seconds)
        print(f"reads alone:              {percentiles(alone)}")
        stop = multiprocessing.Event()
        report: Any = multiprocessing.Queue()
        sprayer = multiprocessing.Process(target=spray_logins, args=(
            base, args.burst, args.addresses, stop, report))
        sprayer.start()
        time.sleep(2)
        started = time.monotonic()
        during = read_latencies(base, bearer, args.seconds)
        elapsed = time.monotonic() - started + 1
        stop.set()
        seen = report.get(timeout=300)
        sprayer.join()
        print(f"reads during the burst:   {percentiles(during)}")
        ratio = statistics.median(during) / statistics.median(alone)
        print(f"median slow-down:         {ratio:.1f} x")
        total = sum(seen.values())
        print(f"logins during the burst:  {total / elapsed:.1f}/s, answers {seen}")
        import summary

        summary.write(args.summary, "abuse.py logins", [summary.Row(
            name="reads during a login burst",
            baseline=f"reads alone median {statistics.median(alone) * 1000:.1f} ms",
            figure=f"median {statistics.median(during) * 1000:.1f} ms", ratio=ratio,
            ratio_text=f"{ratio:.1f}x slower")])


def bomb_png(side: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (side, side), (90, 120, 150)).save(out, "PNG", optimize=True)
    return out.getvalue()


def photos(args: argparse.Namespace) -> None:
    data = bomb_png(args.side)
    print(f"PNG of {args.side} x {args.side} pixels: {len(data) / 1024:.0f} kB")
    with server([("bench-inspector", "inspector")]) as (base, pid):
        bearer = token(base, "bench-inspector")
        headers = {"Authorization": f"Bearer {bearer}"}
        before = memory_kib(pid)
        answers: list[int] = []

        def upload(number: int) -> None:
            # Each a little different, so that none is a repeat of a stored one.
            with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
                answer = client.post("/photos", files={
                    "file": (f"bomb-{number}.png", data + b"\0" * number, "image/png")})
                answers.append(answer.status_code)

        threads = [threading.Thread(target=upload, args=(n,)) for n in range(args.parallel)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.monotonic() - started
        time.sleep(3)
        after = memory_kib(pid)
        mib = 1024
        print(f"answers {sorted(answers)} in {took:.1f} s")
        print(f"server RSS before {before['VmRSS'] / mib:.0f} MiB, peak "
              f"{after['VmHWM'] / mib:.0f} MiB, 3 s after {after['VmRSS'] / mib:.0f} MiB")
        import summary

        summary.write(args.summary, "abuse.py photos", [summary.Row(
            name=f"{args.parallel} uploads of {args.side} x {args.side}",
            baseline=f"RSS before {before['VmRSS'] / mib:.0f} MiB",
            figure=f"peak {after['VmHWM'] / mib:.0f} MiB, after {after['VmRSS'] / mib:.0f} MiB, "
                   f"answers {sorted(answers)}",
            ratio=after["VmHWM"] / before["VmRSS"], ratio_text=
            f"peak {after['VmHWM'] / before['VmRSS']:.1f}x")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    burst = commands.add_parser("logins", help="reads' latency during a burst of logins")
    burst.add_argument("--seconds", type=float, default=20.0)
    burst.add_argument("--burst", type=int, default=16, help="clients logging in at once")
    burst.add_argument("--addresses", action="store_true",
                       help="each login from another local address (127.x.y.1)")
    bombs = commands.add_parser("photos", help="memory of parallel huge-PNG uploads")
    bombs.add_argument("--parallel", type=int, default=4)
    bombs.add_argument("--side", type=int, default=7000)
    import summary  # bench/summary.py (bench/ is on the path when run)

    summary.add_option(burst)
    summary.add_option(bombs)
    args = parser.parse_args()
    {"logins": logins, "photos": photos}[args.command](args)


if __name__ == "__main__":
    main()
