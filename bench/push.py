"""Web Push benchmark: events on the app's bus → VAPID-signed, aes128gcm-encrypted
notifications → a push service on loopback.

Runs the app in-process (its real dispatcher and sender), subscribes ``--subscribers``
browsers (keys made here), publishes ``--events`` event starts one after another and
waits for every notification of each. Prints the latency from publish to the push
service's receipt (p50 / p95 / max), the time to reach every subscriber of one event,
and the CPU time per notification (encryption, signing, HTTP; both ends in this process).
One notification per event is decrypted to check what was measured is real.

    python -m bench.push [--subscribers 50] [--events 20] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import resource
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.admin_keys import bootstrap_admin_key
from app.db import make_engine, make_session_factory
from app.main import create_app
from app.migrations import upgrade
from app.settings import Settings
from tests.app.push_service import Browser, LocalPushService


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="livecam-bench-push-") as tmp:
        data = Path(tmp)
        settings = Settings(
            data_dir=data,
            database_url=f"sqlite:///{data / 'livecam.db'}",
            livekit_api_key="bench",
            livekit_api_secret=SecretStr(secrets.token_urlsafe(32)),  # no LiveKit here
            push_allow_insecure=True,
            push_min_interval=0,
            push_max_per_hour=1_000_000,
            push_concurrency=args.concurrency,
            _env_file=None,  # type: ignore[call-arg]
        )
        engine = make_engine(settings.database_url)
        upgrade(engine)
        with make_session_factory(engine)() as session:
            key = bootstrap_admin_key(session, data, datetime.now(UTC))
        engine.dispose()
        assert key is not None
        admin = {"Authorization": f"Bearer {key}"}

        service = LocalPushService()
        app = create_app(settings)
        try:
            with TestClient(app) as client:
                browsers = []
                for n in range(args.subscribers):
                    browser = Browser(service.endpoint(f"s{n}"))
                    response = client.post(
                        "/api/push/subscriptions",
                        json={"subscription": browser.subscription(), "device": f"s{n}"},
                        headers=admin,
                    )
                    response.raise_for_status()
                    browsers.append(browser)

                latencies: list[float] = []
                fanouts: list[float] = []
                cpu_before = _cpu_s()
                for i in range(args.events):
                    event_id = str(uuid.uuid4())
                    now = datetime.now(UTC).isoformat()
                    event = {
                        "id": event_id,
                        "camera_id": "door",
                        "camera_name": "Front door",
                        "label": "person",
                        "object": "person",
                        "score": 0.9,
                        "box": [0.1, 0.1, 0.5, 0.9],
                        "zones": ["Driveway"],
                        "started_at": now,
                        "updated_at": now,
                        "ended_at": None,
                        "active": True,
                        "has_snapshot": True,
                        "snapshot_url": f"/api/events/{event_id}/snapshot.jpg",
                    }
                    published = time.monotonic()
                    app.state.event_bus.publish(event)
                    received = [service.wait_for(f"s{n}", i + 1)[i] for n in range(len(browsers))]
                    got = [r.at - published for r in received]
                    latencies.extend(got)
                    fanouts.append(max(got))
                    sample = browsers[i % len(browsers)].payload(received[i % len(browsers)])
                    if sample["event_id"] != event_id or sample["title"] != "Person at Front door":
                        print(f"wrong payload: {sample}", file=sys.stderr)
                        return 1
                cpu = _cpu_s() - cpu_before
        finally:
            service.close()

    count = len(latencies)
    print(
        f"web push: {args.subscribers} subscribers × {args.events} events = {count} "
        f"notifications (concurrency {args.concurrency})"
    )
    print(
        "latency publish → push service: "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p95 {_percentile(latencies, 95) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    fanout_ms = statistics.median(fanouts) * 1000, max(fanouts) * 1000
    print(
        f"all {args.subscribers} subscribers reached: median {fanout_ms[0]:.0f} ms, "
        f"max {fanout_ms[1]:.0f} ms per event"
    )
    print(f"CPU per notification (sender and local push service): {cpu / count * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
