"""``make bench``: the booth's media benchmarks, each beside a reference measured in the same run.

1. Booth CPU per call-second: the booth's packet path (test pattern encoded once by libx264
   ultrafast, aiortc only packetizes) against aiortc's own path (the same raw frames, aiortc
   encodes), same synthetic input, sender measured in its own process.
2. Glass-to-glass latency: the stamp's capture time in each frame against the time the receiver
   decoded it, through coturn on 127.0.0.1 (relay-only on both sides), against a direct
   loopback call as the reference.

Prints a table, writes ``bench/results.json``. Needs coturn (``turnserver``) for the relay run.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.relay import RelaySettings, coturn_config  # noqa: E402 - needs the path above

PEER = [sys.executable, str(REPO / "bench" / "peer.py")]


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Coturn:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("turnserver")
        if binary is None:
            raise SystemExit("bench: coturn (turnserver) is not installed: apt-get install coturn")
        self.port, self.secret = _free_udp_port(), secrets.token_hex(16)
        log = workdir / "turn.log"
        conf = workdir / "turn.conf"
        conf.write_text(
            coturn_config(
                RelaySettings(
                    secret=self.secret,
                    port=self.port,
                    realm="bench",
                    min_port=49300,
                    max_port=49400,
                    allow_loopback=True,
                    log_file=log,
                    pid_file=workdir / "turn.pid",
                    verbose=True,
                )
            )
        )
        self.process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not (log.exists() and "listener opened" in log.read_text(errors="replace")):
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("bench: coturn did not start")
            time.sleep(0.1)

    def args(self) -> list[str]:
        user = f"{int(time.time()) + 3600}:bench"
        password = base64.b64encode(
            hmac.new(self.secret.encode(), user.encode(), hashlib.sha1).digest()
        ).decode()
        return [
            "--turn",
            f"turn:127.0.0.1:{self.port}?transport=udp",
            "--turn-user",
            user,
            "--turn-pass",
            password,
        ]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def _line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"bench: a peer exited early (code {process.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


def _send(process: subprocess.Popen[str], data: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(data) + "\n")
    process.stdin.flush()


def call(path: str, seconds: float, extra: list[str], warmup: float = 3.0) -> dict[str, Any]:
    """One benchmark call; returns the sender's CPU and the receiver's latencies."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def spawn(*words: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*PEER, *words, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )

    sender, receiver = spawn("sender", "--path", path), spawn("receiver")
    try:
        _send(receiver, _line(sender))
        _send(sender, _line(receiver))
        time.sleep(warmup)
        for peer in (sender, receiver):
            _send(peer, {"measure": True})
        time.sleep(seconds)
        for peer in (sender, receiver):
            _send(peer, {"stop": True})
        sent, received = _line(sender), _line(receiver)
    finally:
        for peer in (sender, receiver):
            peer.wait(timeout=30)
    return {**sent, **received}


def percentile(values: list[int], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    print(f"booth CPU: packet path, {args.cpu_seconds:.0f} s ...", flush=True)
    packets = call("packets", args.cpu_seconds, [])
    print(f"booth CPU: aiortc's own encoder, {args.cpu_seconds:.0f} s ...", flush=True)
    reference = call("aiortc", args.cpu_seconds, [])
    print(
        f"booth CPU: pre-encoded packets (hardware encoder), {args.cpu_seconds:.0f} s ...",
        flush=True,
    )
    replay = call("replay", args.cpu_seconds, [])
    theirs = reference["cpu_seconds"] / reference["seconds"]
    for label, run in (("x264 on the booth's CPU", packets), ("hardware-encoded (Pi 4)", replay)):
        ours = run["cpu_seconds"] / run["seconds"]
        rows.append(
            {
                "figure": f"booth CPU s/call-s, packet path, {label}",
                "value": ours,
                "reference": theirs,
                "reference_is": "aiortc encodes the same frames",
                "ratio": ours / theirs,
                "goal": "ratio <= 0.25",
            }
        )

    with tempfile.TemporaryDirectory() as workdir:
        coturn = Coturn(Path(workdir))
        try:
            print(f"latency through coturn, {args.latency_seconds:.0f} s ...", flush=True)
            relayed = call("packets", args.latency_seconds, coturn.args())
        finally:
            coturn.stop()
    latencies = relayed["latencies_ms"]
    direct_latencies = packets["latencies_ms"]
    for p, goal in ((50, "<= 80 ms"), (95, ""), (99, "<= 150 ms")):
        value = percentile(latencies, p)
        ref = percentile(direct_latencies, p)
        rows.append(
            {
                "figure": f"glass-to-glass p{p} ms, via coturn",
                "value": value,
                "reference": ref,
                "reference_is": "direct loopback, no relay",
                "ratio": value / ref if ref else None,
                "goal": goal,
            }
        )
    rows.append(
        {
            "figure": "frames measured via coturn (unreadable stamps)",
            "value": len(latencies),
            "reference": relayed["unreadable"],
            "reference_is": "unreadable",
            "ratio": None,
            "goal": ">= 60 s of frames",
        }
    )

    print()
    print(f"{'figure':52} {'value':>10} {'reference':>10} {'ratio':>7}  goal")
    for row in rows:
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        print(
            f"{row['figure']:52} {row['value']:>10.3f} {row['reference']:>10.3f} {ratio:>7}"
            f"  {row['goal']}"
        )
    result = {
        "command": "make bench",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rows": rows,
        "latency_ms": {
            "relay": {"p50": percentile(latencies, 50), "mean": statistics.mean(latencies)}
        },
    }
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten to {args.output.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
