"""livecam side by side with go2rtc (what Frigate and Home Assistant use for live view),
in one run, on the same input and the same receiver.

    ./run bench peers [--seconds 15] [--ttff-runs 10] [--viewers 10] [--publishers ...]

The input: one pre-encoded 1080p30 H.264 clip (5 Mbit/s, a keyframe a second, the frame
number drawn as a bar code in every picture), looped and paced in real time by a pacer
process that publishes it over RTSP to a "camera" (a go2rtc used only as an RTSP
server) and logs the wall-clock time it sent each frame. Both systems pull that RTSP
stream the way they would pull an IP camera:

    pacer ──RTSP──▶ camera ──RTSP──▶ go2rtc (under test) ──WebRTC──▶ Chromium
                           └─RTSP──▶ livecam edge ─▶ livekit-server ──WebRTC──▶ Chromium

livecam is measured once per edge publisher (`publisher` in the edge config): libwebrtc
(livekit.rtc, the default) and pion (edge/pionpub), each on a fresh stack.

The receiver for both is headless Chromium (Debian's), one video element, reading each
frame's number from its pixels in requestVideoFrameCallback. Glass-to-glass latency is
the time Chromium presents frame N minus the time the pacer sent frame N (same clock).
Time to first frame: from opening the connection (go2rtc: the WebRTC offer; livecam:
Room.connect with a fresh token) to the first presented frame, with run k of n started
k/n of a GOP after a keyframe (both systems wait for the camera's next keyframe).
CPU: of go2rtc, and of the edge (with its pionpub child) and livekit-server, over the same
window, with 1 and with ``--viewers`` receivers (connections in one page that receive but do
not decode). The edge runs with detection and recording off: go2rtc does neither; this
compares live view alone.

The publisher CPU target compares what runs on the camera's host: the edge (its Python and,
with pion, pionpub) against go2rtc. livekit-server is the fan-out tier on the server, shared
by every camera; its cost is printed beside it and counted in the N-viewer column, where
every process serving the viewers is summed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.live import CACHE, sample_cpu
from scripts.devstack import (
    ROOT,
    EdgeCamera,
    ManagedProcess,
    Stack,
    built_binary,
    create_camera,
    free_tcp_port,
    free_udp_range,
    running_stack,
    start_edge,
    write_edge_config,
)
from scripts.media import make_h264_file
from scripts.viewer import percentile

CLIP = CACHE / "1080p30-5000k-gop30.mp4"
FPS = 30
TARGETS = {"latency": 1.0, "ttff": 1.0, "publish_cpu": 1.5}


# -- the pacer (a child process: its timing must not share a GIL with the browser) ---------


def pace(clip: Path, url: str, log: Path) -> None:
    """Publish ``clip`` over RTSP to ``url`` forever, in real time; log "index wall_ms"."""
    import av

    with log.open("w", buffering=1) as out:
        output = av.open(url, "w", format="rtsp", options={"rtsp_transport": "tcp"})
        with av.open(str(clip)) as probe:
            template = probe.streams.video[0]
            ostream = output.add_stream_from_template(template)
            base = template.time_base
        assert base is not None
        step = round(1 / (FPS * base))
        start = time.monotonic()
        sent = 0
        while True:
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                for index, packet in enumerate(p for p in container.demux(stream) if p.size):
                    due = start + sent / FPS
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    packet.stream = ostream
                    packet.pts = packet.dts = sent * step
                    packet.time_base = base
                    output.mux(packet)
                    out.write(f"{index} {time.time() * 1000:.3f}\n")
                    sent += 1


def read_pacer_log(log: Path) -> dict[int, list[float]]:
    """Frame index → the wall times (ms) it was sent."""
    sent: dict[int, list[float]] = {}
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sent.setdefault(int(parts[0]), []).append(float(parts[1]))
    return sent


def gop_phase(log: Path, phase: float, margin_ms: float = 1500.0) -> float:
    """The next wall time (ms), at least ``margin_ms`` away, that lies ``phase`` (0..1) of
    a GOP after a keyframe the pacer sent.

    A new viewer of an RTSP camera waits for the camera's next keyframe, so time to first
    frame depends on where in the GOP it connects. Runs one after another lock onto one
    phase (a run that lasts about a GOP meets the next keyframe at once, every time).
    Starting run k of n at phase k/n gives both systems the same, evenly spread phases.
    """
    sent = read_pacer_log(log)
    keyframe = max(t for index, times in sent.items() if index % FPS == 0 for t in times)
    gop_ms = 1000.0
    start = keyframe + phase * gop_ms
    while start < time.time() * 1000 + margin_ms:
        start += gop_ms
    return start


def latencies(samples: list[list[float]], sent: dict[int, list[float]]) -> list[float]:
    """Presented (frame number, wall ms) samples → latency ms (latest send before it)."""
    out = []
    for number, shown in samples:
        times = [t for t in sent.get(int(number), []) if t <= shown]
        if times:
            out.append(shown - max(times))
    return out


# -- processes -----------------------------------------------------------------------------


def go2rtc_binary() -> str:
    """The pinned go2rtc, built once by scripts/setup-go2rtc.sh."""
    return built_binary("GO2RTC_BIN", ROOT / "scripts" / "setup-go2rtc.sh")


@dataclass
class Go2rtc:
    api_port: int
    rtsp_port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@contextmanager
def running_go2rtc(workdir: Path, name: str, source: str) -> Iterator[Go2rtc]:
    """go2rtc with one stream ``cam`` (``source``: an RTSP URL, or "" to accept a push)."""
    workdir.mkdir(parents=True, exist_ok=True)
    api, rtsp = free_tcp_port(), free_tcp_port()
    webrtc = free_udp_range(1)
    config = workdir / f"{name}.yaml"
    config.write_text(
        f"""api:
  listen: "127.0.0.1:{api}"
  origin: "*"
rtsp:
  listen: "127.0.0.1:{rtsp}"
webrtc:
  listen: "127.0.0.1:{webrtc}"
  candidates:
    - "127.0.0.1:{webrtc}"
srtp:
  listen: ""
rtmp:
  listen: ""
log:
  level: warn
streams:
  cam: {source}
"""
    )
    proc = ManagedProcess(
        name, [go2rtc_binary(), "-config", str(config)], workdir / f"{name}.log", dict(os.environ)
    )
    proc.start()
    server = Go2rtc(api, rtsp, proc)
    try:
        proc.wait_until(lambda: httpx.get(server.url + "/api", timeout=1).status_code < 500, name)
        yield server
    finally:
        proc.stop()


# -- the receiver page -----------------------------------------------------------------------

# Runs in the page. Connects (go2rtc: WHEP-like offer/answer on /api/webrtc; livecam:
# livekit-client with the viewer token), then, when ``watch``, presents the track in a
# video element and reads each frame's bar code: [[frame number, wall ms], ...].
PAGE_JS = """
async ({kind, url, token, tokens, seconds, watch, count, startAt}) => {
  const wall = () => performance.timeOrigin + performance.now();
  // The dashboard loads livekit-client with the page, before anyone clicks a camera.
  const lk = kind === 'go2rtc' ? null : await import('/assets/vendor/livekit-client.esm.mjs');
  const phases = {};
  const conns = [];
  let receiver = null;
  async function connect(i) {
    if (kind === 'go2rtc') {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', {direction: 'recvonly'});
      const track = new Promise(r => { pc.ontrack = e => r(e.track); });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise(r => {
        if (pc.iceGatheringState === 'complete') return r();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
        setTimeout(r, 1000);
      });
      const resp = await fetch(url, {method: 'POST', body: pc.localDescription.sdp});
      await pc.setRemoteDescription({type: 'answer', sdp: await resp.text()});
      phases.connected = wall();
      conns.push(() => pc.close());
      receiver = pc.getReceivers()[0];
      return await track;
    }
    const room = new lk.Room({adaptiveStream: false, dynacast: false});
    const track = new Promise(r => room.on(lk.RoomEvent.TrackSubscribed,
      t => {
        if (t.kind === 'video') {
          phases.subscribed = wall(); receiver = t.receiver; r(t.mediaStreamTrack);
        }
      }));
    await room.connect(url, tokens ? tokens[i] : token, {autoSubscribe: true});
    phases.connected = wall();
    conns.push(() => room.disconnect());
    return await track;
  }
  async function inbound() {
    if (!receiver) return null;
    const stats = await receiver.getStats();
    const out = {};
    stats.forEach(s => {
      if (s.type === 'inbound-rtp') {
        out.framesDecoded = s.framesDecoded; out.framesDropped = s.framesDropped;
        out.framesReceived = s.framesReceived;
        out.jitterBufferMs = 1000 * s.jitterBufferDelay / Math.max(1, s.jitterBufferEmittedCount);
        out.decodeMs = 1000 * s.totalDecodeTime / Math.max(1, s.framesDecoded);
        out.packetsLost = s.packetsLost; out.nackCount = s.nackCount;
      }
      if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) {
        out.rttMs = 1000 * (s.currentRoundTripTime || 0);
      }
      if (s.type === 'local-candidate' || s.type === 'remote-candidate') {
        out[s.type] = (out[s.type] || []).concat([s.protocol + ':' + s.candidateType]);
      }
    });
    return out;
  }
  if (startAt) await new Promise(r => setTimeout(r, Math.max(0, startAt - wall())));
  const started = wall();
  if (!watch) {
    for (let i = 0; i < count; i++) await connect(i);
    window.__close = () => conns.forEach(c => c());
    return {started, first: null, samples: []};
  }
  const track = await connect(0);
  const video = document.createElement('video');
  video.muted = true; video.playsInline = true; video.autoplay = true;
  video.srcObject = new MediaStream([track]);
  document.body.appendChild(video);
  const canvas = document.createElement('canvas');
  canvas.width = 12; canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const samples = [];
  let first = null;
  await new Promise(done => {
    const until = () => first !== null && wall() - first > seconds * 1000;
    const onFrame = (now, meta) => {
      const shown = performance.timeOrigin + now;
      if (first === null) first = shown;
      const h = video.videoHeight, w = video.videoWidth;
      ctx.drawImage(video, 0, h - 6, w, 2, 0, 0, 12, 1);
      const px = ctx.getImageData(0, 0, 12, 1).data;
      let n = 0;
      for (let b = 0; b < 12; b++) {
        const v = (px[b * 4] + px[b * 4 + 1] + px[b * 4 + 2]) / 3;
        if (v > 128) n |= 1 << b;
      }
      samples.push([n, shown]);
      if (until()) return done();
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    video.play().catch(() => {});
    setTimeout(done, (seconds + 30) * 1000);
  });
  const stats = await inbound();
  conns.forEach(c => c());
  video.remove();
  return {started, first, samples, stats, phases};
}
"""


@dataclass
class Figures:
    """One system's figures. ``cpu_*`` are per process (each with its children) and sum to
    the system's total; ``publisher`` names the process that publishes the camera;
    ``parts_*`` break a process down (pionpub inside the edge) and are not summed."""

    name: str
    latency: list[float]
    ttff: list[float]
    cpu_publish: dict[str, float]
    cpu_viewers: dict[str, float]
    frames: int
    publisher: str
    parts_publish: dict[str, float]
    parts_viewers: dict[str, float]


class Browser:
    """Headless Chromium (Debian's, as the browser tests use it)."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
            headless=True,
        )

    def run(self, origin: str, args: dict[str, Any]) -> dict[str, Any]:
        page = self.browser.new_page()
        try:
            page.goto(origin)
            result: dict[str, Any] = page.evaluate(PAGE_JS, args)
            return result
        finally:
            page.close()

    @contextmanager
    def receivers(self, origin: str, args: dict[str, Any]) -> Iterator[None]:
        """``args['count']`` receiving connections (no decode) for the block's duration."""
        page = self.browser.new_page()
        try:
            page.goto(origin)
            page.evaluate(PAGE_JS, {**args, "watch": False})
            yield
            page.evaluate("() => window.__close && window.__close()")
        finally:
            page.close()

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()


def measure(
    name: str,
    browser: Browser,
    origin: str,
    connect_args: Any,
    sent_log: Path,
    procs: dict[str, psutil.Process],
    args: argparse.Namespace,
    parts: dict[str, psutil.Process] | None = None,
) -> Figures:
    """Latency, TTFF and CPU of one system. ``connect_args()`` gives fresh page args.

    The first of ``procs`` is the publisher; ``parts`` are sampled in the same window but
    are already inside one of ``procs`` (children), so they are shown, not summed."""
    print(f"peers: {name}: latency for {args.seconds:.0f} s", file=sys.stderr)
    watched = browser.run(origin, {**connect_args(), "seconds": args.seconds, "watch": True})
    sent = read_pacer_log(sent_log)
    lat = latencies(watched["samples"], sent)
    print(f"peers: {name}: receiver stats {watched.get('stats')}", file=sys.stderr)
    ttffs = []
    phases: dict[str, list[float]] = {}
    firsts: list[int] = []
    for run_index in range(args.ttff_runs):
        start_at = gop_phase(sent_log, run_index / args.ttff_runs)
        run = browser.run(
            origin, {**connect_args(), "seconds": 0.2, "watch": True, "startAt": start_at}
        )
        if run["first"] is not None:
            ttffs.append((run["first"] - run["started"]) / 1000)
            firsts.append(int(run["samples"][0][0]))
            for phase, at in run["phases"].items():
                phases.setdefault(phase, []).append((at - run["started"]) / 1000)
    print(
        f"peers: {name}: time to first frame "
        + ", ".join(f"{t:.2f}" for t in ttffs)
        + " s; phases (median s): "
        + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in phases.items())
        # A keyframe every FPS frames: a first frame off that grid was decoded without one.
        + f"; first frames shown {firsts} ({sum(n % FPS == 0 for n in firsts)} keyframes)",
        file=sys.stderr,
    )
    parts = parts or {}
    cpu: dict[str, dict[str, float]] = {}
    for label, count in (("publish", 1), ("viewers", args.viewers)):
        print(f"peers: {name}: CPU with {count} receiver(s)", file=sys.stderr)
        fresh = [connect_args() for _ in range(count)]
        tokens = [a["token"] for a in fresh]
        with browser.receivers(
            origin, {**fresh[0], "tokens": tokens, "seconds": 0, "count": count}
        ):
            time.sleep(3)  # past connection set-up and the first keyframe
            cpu[label] = sample_cpu({**procs, **parts}, args.seconds)
    summed = {k: {p: c[p] for p in procs} for k, c in cpu.items()}
    shown = {k: {p: c[p] for p in parts} for k, c in cpu.items()}
    return Figures(
        name,
        lat,
        ttffs,
        summed["publish"],
        summed["viewers"],
        len(watched["samples"]),
        publisher=next(iter(procs)),
        parts_publish=shown["publish"],
        parts_viewers=shown["viewers"],
    )


def livecam_camera(
    stack: Stack, camera_url: str, publisher: str = "libwebrtc"
) -> tuple[str, ManagedProcess]:
    cam_id, cred = create_camera(stack.api, "peers")
    config = write_edge_config(
        stack.workdir / "edge-peers.toml",
        stack.api.url,
        [
            EdgeCamera(
                cam_id,
                cred,
                {"kind": "rtsp", "url": camera_url},
                detect={"enabled": False},
                record={"enabled": False, "clips": False},
            )
        ],
        publisher=publisher,
    )
    edge = start_edge(stack.workdir, config, name="edge-peers", publisher=publisher)
    stack.edges.append(edge)
    return cam_id, edge


def measure_livecam(
    publisher: str,
    browser: Browser,
    workdir: Path,
    camera_url: str,
    sent_log: Path,
    args: argparse.Namespace,
) -> Figures:
    """Figures of livecam with the edge publishing through ``publisher``, on a fresh stack."""
    with running_stack(workdir / f"stack-{publisher}") as stack:
        cam_id, edge = livecam_camera(stack, camera_url, publisher)
        with stack.api.client() as c:

            def token() -> dict[str, Any]:
                t = c.post(f"/api/cameras/{cam_id}/viewer-token").json()
                return {"kind": "livecam", "url": t["url"], "token": t["token"]}

            edge.wait_until(
                lambda: c.get(f"/api/cameras/{cam_id}/status").json()["state"] == "publishing",
                "edge publishing",
            )
            assert edge.proc is not None
            assert stack.livekit.process.proc is not None
            procs = {
                "edge": psutil.Process(edge.proc.pid),  # with its children: pionpub
                "livekit": psutil.Process(stack.livekit.process.proc.pid),
            }
            # pion: the edge's child pionpub does the sending. It is counted in the edge's
            # figure (a process's CPU includes its children's) and shown on its own.
            parts = {c.name(): c for c in procs["edge"].children() if c.name() == "pionpub"}
            name = "livecam" if publisher == "libwebrtc" else f"livecam/{publisher}"
            return measure(name, browser, stack.api.url, token, sent_log, procs, args, parts)


def ensure_clip() -> None:
    if CLIP.exists():
        return
    print(f"peers: encoding {CLIP.name} (once)...", file=sys.stderr)
    tmp = CLIP.with_suffix(".tmp.mp4")
    make_h264_file(
        tmp,
        width=1920,
        height=1080,
        fps=FPS,
        seconds=20,
        gop=FPS,
        bitrate_kbps=5000,
        profile="main",
    )
    tmp.rename(CLIP)


def _row(f: Figures) -> tuple[str, float, float, float, float, float, float, float, int]:
    return (
        f.name,
        percentile(f.latency, 50),
        percentile(f.latency, 95),
        statistics.median(f.ttff) if f.ttff else float("nan"),
        percentile(f.ttff, 95) if f.ttff else float("nan"),
        f.cpu_publish[f.publisher],
        sum(f.cpu_publish.values()),
        sum(f.cpu_viewers.values()),
        f.frames,
    )


def report(ours: list[Figures], peer: Figures) -> bool:
    """Print every livecam publisher and go2rtc, the ratios and the targets of each;
    whether some livecam publisher meets every target."""
    print()
    print(
        f"livecam vs go2rtc, 1080p30 H.264 5 Mbit/s over RTSP, loopback, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    width = max(len(f.name) for f in [*ours, peer])
    print(
        f"{'':<{width}} "
        + "{:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>11} {:>7}".format(
            "lat p50",
            "lat p95",
            "ttff p50",
            "ttff p95",
            "cpu pub",
            "cpu 1 view",
            "cpu N views",
            "frames",
        )
    )
    for f in [*ours, peer]:
        name, p50, p95, t50, t95, cp, c1, cn, n = _row(f)
        print(
            f"{name:<{width}} {p50:>7.1f}ms {p95:>7.1f}ms {t50:>8.2f}s {t95:>8.2f}s "
            f"{cp:>9.1f}% {c1:>9.1f}% {cn:>10.1f}% {n:>7}"
        )
    print(
        "  cpu pub: the process publishing the camera, on the camera's host (livecam: the "
        "edge with its pionpub; go2rtc: all of it)\n"
        "  cpu 1 view / N views: every process of the system, 1 and N receivers"
    )
    _, gp50, gp95, gt50, _, gcp, gc1, gcn, _ = _row(peer)
    met_any = False
    for f in ours:
        _, lp50, lp95, lt50, _, lcp, lc1, lcn, _ = _row(f)
        parts = [f"{k} {v:.1f}%/{f.cpu_viewers[k]:.1f}%" for k, v in f.cpu_publish.items()]
        parts += [
            f"(of the edge: {k} {v:.1f}%/{f.parts_viewers.get(k, float('nan')):.1f}%)"
            for k, v in f.parts_publish.items()
        ]
        print(f"{f.name}: CPU " + ", ".join(parts) + " (1 / N receivers)")
        ratios = {
            "latency p50": lp50 / gp50,
            "latency p95": lp95 / gp95,
            "ttff p50": lt50 / gt50,
            "cpu publishing": lcp / gcp,
            "cpu with the SFU, 1 receiver": lc1 / gc1,
            "cpu with the SFU, N receivers": lcn / gcn,
        }
        print(f"  ratios {f.name}/go2rtc: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        if len(f.ttff) == len(peer.ttff) and f.ttff:
            # Run k of both started at the same GOP phase: the per-run difference is the
            # connection's cost, except where one caught a keyframe the other just missed.
            deltas = [a - b for a, b in zip(f.ttff, peer.ttff, strict=True)]
            print(
                "  ttff minus go2rtc's, run by run (same GOP phase): "
                + " ".join(f"{d:+.2f}" for d in deltas)
                + f" s; median {statistics.median(deltas):+.2f} s"
            )
        checks = {
            "latency p50 ≤ go2rtc": ratios["latency p50"] <= TARGETS["latency"],
            "latency p95 ≤ go2rtc": ratios["latency p95"] <= TARGETS["latency"],
            "ttff ≤ go2rtc": ratios["ttff p50"] <= TARGETS["ttff"],
            "publisher cpu ≤ 1.5× go2rtc": ratios["cpu publishing"] <= TARGETS["publish_cpu"],
        }
        failed = [k for k, ok in checks.items() if not ok]
        met_any = met_any or not failed
        print("  targets: " + ("all met" if not failed else "MISSED " + ", ".join(failed)))
    return met_any


def run(args: argparse.Namespace) -> int:
    ensure_clip()
    workdir = CACHE / "peers"
    workdir.mkdir(parents=True, exist_ok=True)
    sent_log = workdir / "pacer.log"
    with running_go2rtc(workdir, "camera", "") as camera:
        camera_url = f"rtsp://127.0.0.1:{camera.rtsp_port}/cam"
        pacer = ManagedProcess(
            "pacer",
            [sys.executable, "-m", "bench.peers", "pace", camera_url, str(sent_log)],
            workdir / "pacer.out",
            {**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        pacer.start()
        pacer.wait_until(lambda: sent_log.exists() and sent_log.stat().st_size > 0, "pacer")
        browser = Browser()
        try:
            with running_go2rtc(workdir, "go2rtc", camera_url) as g2:
                peer = measure(
                    "go2rtc",
                    browser,
                    g2.url,
                    lambda: {"kind": "go2rtc", "url": "/api/webrtc?src=cam", "token": ""},
                    sent_log,
                    {"go2rtc": psutil.Process(g2.process.proc.pid)},  # type: ignore[union-attr]
                    args,
                )
            ours = [
                measure_livecam(publisher, browser, workdir, camera_url, sent_log, args)
                for publisher in args.publishers
            ]
        finally:
            browser.close()
            pacer.stop()
    return 0 if report(ours, peer) else 1


def main() -> int:
    """Entry point."""
    if len(sys.argv) > 1 and sys.argv[1] == "pace":
        pace(CLIP, sys.argv[2], Path(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        prog="./run bench peers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--ttff-runs", type=int, default=10)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument(
        "--publishers",
        nargs="+",
        choices=("libwebrtc", "pion"),
        default=["libwebrtc", "pion"],
        help="the edge publishers to measure (edge config `publisher`)",
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
