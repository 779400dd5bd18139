"""Start the real stack (livekit-server, the API, edge publishers) as child processes.

One implementation for `./run demo`, the integration tests and the benchmarks, so all
three exercise exactly the same programs a user runs. Every process gets its own log
file, is started in its own process group and is stopped (TERM, then KILL) on exit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LIVEKIT_CONFIG_TEMPLATE = ROOT / "webrtc" / "livekit-dev.yaml"


class StackError(RuntimeError):
    """A process of the stack failed to start; the message includes its log's tail."""


def server_port_window() -> tuple[int, int]:
    """Where servers started here get their ports: below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which
    outgoing connections draw from too. Between picking such a port and the server
    binding it, a client socket (a browser, 50 subscribers) may take it, and the server
    dies with "address already in use" (seen in bench/load). Ports below the range are
    never taken that way.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (10000, low) if low > 12000 else (low, 65535)


_HANDED_OUT: set[int] = set()  # never give one port to two servers of this process


def _free(kind: socket.SocketKind, count: int) -> int:
    low, high = server_port_window()
    rng = secrets.SystemRandom()
    for _ in range(500):
        start = rng.randrange(low, high - count)
        ports = range(start, start + count)
        if _HANDED_OUT.intersection(ports):
            continue
        socks: list[socket.socket] = []
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                # Probe every address: livekit-server binds its ICE/TCP port on all of them.
                s.bind(("0.0.0.0", port))  # noqa: S104
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        _HANDED_OUT.update(ports)
        return start
    raise StackError(f"no {count} consecutive free {kind.name} ports in {low}-{high}")


def free_tcp_port() -> int:
    """A TCP port free right now, outside the ephemeral range (see server_port_window)."""
    return _free(socket.SOCK_STREAM, 1)


def free_udp_range(count: int) -> int:
    """The first of ``count`` consecutive UDP ports that are all free, outside the
    ephemeral range."""
    return _free(socket.SOCK_DGRAM, count)


def built_binary(env_var: str, setup_script: Path) -> str:
    """A pinned program: ``$env_var`` when it names a file, else what ``setup_script``
    (which builds it into the cache once) prints last on stdout."""
    env_bin = os.environ.get(env_var)
    if env_bin and Path(env_bin).is_file():
        return env_bin
    out = subprocess.run(["bash", str(setup_script)], check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


def livekit_binary() -> str:
    """The pinned livekit-server, built on first use by webrtc/install-livekit.sh."""
    return built_binary("LIVEKIT_SERVER_BIN", ROOT / "webrtc" / "install-livekit.sh")


@dataclass
class ManagedProcess:
    """A child process with its log file; ``stop`` is idempotent."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn it (in a new session so its whole group can be signalled)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"\n=== start {' '.join(self.argv)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Ask politely, then kill the whole process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Crash it (SIGKILL), as a power cut or OOM would."""
        self.stop(timeout=5.0, sig=signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Poll ``check`` until true; StackError with the log tail if it dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise StackError(f"{self.name} exited while waiting for {what}:\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.1)
        raise StackError(f"{self.name}: {what} not ready after {timeout:.0f}s:\n{self.log_tail()}")


def _http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1.0).status_code < 500


@dataclass
class LiveKit:
    """A running livekit-server on loopback."""

    port: int
    tcp_port: int
    udp_start: int
    api_key: str
    api_secret: str
    process: ManagedProcess
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """WebSocket URL for clients."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """HTTP URL (health, Twirp API)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start (or restart after stop/kill) on the same ports and wait until it answers."""
        self.process.start()
        self.process.wait_until(_http_ok(self.http_url), "livekit-server HTTP")

    def stop(self) -> None:
        """Stop gracefully."""
        self.process.stop()


def start_livekit(
    workdir: Path,
    *,
    webhook_url: str,
    api_key: str | None = None,
    api_secret: str | None = None,
    port: int | None = None,
    tcp_port: int | None = None,
    udp_start: int | None = None,
    redis_address: str | None = None,
    name: str = "livekit",
    host: str = "127.0.0.1",
) -> LiveKit:
    """Render webrtc/livekit-dev.yaml with free ports and start the pinned server.

    ``redis_address`` (host:port): multi-node mode; every node given the same Redis and
    keys forms one cluster (rooms are placed on a node, signalling reaches it from any).
    ``name`` names its config and log files, for several nodes in one ``workdir``.
    ``host``: the address it listens on and announces (another host's view of it, as
    from a network namespace)."""
    api_key = api_key or "dev" + secrets.token_hex(4)
    api_secret = api_secret or secrets.token_urlsafe(32)
    port = port or free_tcp_port()
    tcp_port = tcp_port or free_tcp_port()
    udp_start = udp_start or free_udp_range(60)
    config = string.Template(LIVEKIT_CONFIG_TEMPLATE.read_text()).substitute(
        port=port,
        tcp_port=tcp_port,
        udp_start=udp_start,
        udp_end=udp_start + 29,
        turn_udp_port=udp_start + 30,
        relay_start=udp_start + 31,
        relay_end=udp_start + 59,
        api_key=api_key,
        webhook_url=webhook_url,
    )
    if redis_address:
        config += f"redis:\n  address: {redis_address}\n"
    if host != "127.0.0.1":
        config = config.replace("  - 127.0.0.1\n", f"  - {host}\n", 1)
        config = config.replace("node_ip: 127.0.0.1", f"node_ip: {host}", 1)
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(config)
    env = {**os.environ, "LIVEKIT_KEYS": f"{api_key}: {api_secret}"}
    proc = ManagedProcess(
        f"livekit-server ({name})" if name != "livekit" else "livekit-server",
        [livekit_binary(), "--config", str(config_path)],
        workdir / f"{name}.log",
        env,
    )
    lk = LiveKit(port, tcp_port, udp_start, api_key, api_secret, proc, host)
    lk.start()
    return lk


@dataclass
class Api:
    """A running livecam API server."""

    port: int
    data_dir: Path
    process: ManagedProcess
    admin_key: str = ""
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start (or restart) and wait for /api/health; reads the bootstrap admin key."""
        self.process.start()
        self.process.wait_until(_http_ok(self.url + "/api/health"), "API /api/health")
        self.admin_key = (self.data_dir / "admin.key").read_text().strip()

    def stop(self) -> None:
        """Stop gracefully."""
        self.process.stop()

    def client(self) -> httpx.Client:
        """An admin-authenticated HTTP client."""
        return httpx.Client(
            base_url=self.url,
            timeout=10.0,
            headers={"Authorization": f"Bearer {self.admin_key}"},
        )


def api_env(
    data_dir: Path, livekit: LiveKit, port: int, public_url: str | None = None
) -> dict[str, str]:
    """Environment for `python -m app` pointing at ``livekit``; browsers and edges are
    sent to ``public_url`` (a proxy in front of LiveKit) when given."""
    return {
        **os.environ,
        "LIVECAM_DATA": str(data_dir),
        "LIVECAM_HOST": "127.0.0.1",
        "LIVECAM_PORT": str(port),
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_PUBLIC_URL": public_url or livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
        "PYTHONUNBUFFERED": "1",
    }


def prepare_api(workdir: Path, port: int | None = None) -> tuple[int, Path]:
    """Pick the API port first: livekit-server needs the webhook URL at start."""
    return port or free_tcp_port(), workdir / "data"


def start_api(
    workdir: Path,
    livekit: LiveKit,
    port: int,
    data_dir: Path,
    public_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    name: str = "api",
    host: str = "127.0.0.1",
) -> Api:
    """Start the API server against ``livekit``; ``extra_env``: more settings (a replica's
    DATABASE_URL and LIVECAM_REDIS_URL, say); ``name`` names its log."""
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", "app"],
        workdir / f"{name}.log",
        {**api_env(data_dir, livekit, port, public_url), "LIVECAM_HOST": host, **(extra_env or {})},
    )
    api = Api(port, data_dir, proc, host=host)
    api.start()
    return api


def create_camera(api: Api, name: str, camera_id: str | None = None) -> tuple[str, str]:
    """Create a camera (or reuse an existing one) and enroll it: (camera id, credential)."""
    with api.client() as c:
        body: dict[str, Any] = {"name": name}
        if camera_id:
            body["id"] = camera_id
        resp = c.post("/api/cameras", json=body)
        if resp.status_code == 409 and camera_id:
            resp = c.post(f"/api/cameras/{camera_id}/enrollment")
            resp.raise_for_status()
            code = resp.json()["code"]
            cam_id = camera_id
        else:
            resp.raise_for_status()
            cam_id = resp.json()["camera"]["id"]
            code = resp.json()["enrollment"]["code"]
        enrolled = httpx.post(f"{api.url}/api/edge/enroll", json={"code": code}, timeout=10)
        enrolled.raise_for_status()
        return cam_id, str(enrolled.json()["credential"])


@dataclass
class EdgeCamera:
    """One camera entry of an edge config."""

    camera_id: str
    credential: str
    source: dict[str, Any]
    #: The camera's ``detect`` table (edge/config.py); None leaves the defaults.
    detect: dict[str, Any] | None = None
    #: The camera's ``record`` table (edge/record/settings.py); None leaves the defaults.
    record: dict[str, Any] | None = None


def toml_value(value: Any) -> str:
    """A TOML literal for str/int/float/bool, lists and inline tables (edge configs)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_edge_config(path: Path, server: str, cameras: list[EdgeCamera], **extra: Any) -> Path:
    """Write an edge TOML with inline credentials; its data directory (event outbox,
    zones) defaults to ``<config stem>-data`` beside it, never the user's own."""
    extra.setdefault("data_dir", str(path.parent / f"{path.stem}-data"))
    # Tests and benches name their publisher; the edge's own default ("auto") would take
    # pion wherever ./run has built it.
    extra.setdefault("publisher", "libwebrtc")
    lines = [f"server = {toml_value(server)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in extra.items()]
    for cam in cameras:
        source = ", ".join(f"{k} = {toml_value(v)}" for k, v in cam.source.items())
        lines += [
            "",
            "[[camera]]",
            f"id = {toml_value(cam.camera_id)}",
            f"credential = {toml_value(cam.credential)}",
            f"source = {{ {source} }}",
        ]
        if cam.detect is not None:
            detect = ", ".join(f"{k} = {toml_value(v)}" for k, v in cam.detect.items())
            lines.append(f"detect = {{ {detect} }}")
        if cam.record is not None:
            record = ", ".join(f"{k} = {toml_value(v)}" for k, v in cam.record.items())
            lines.append(f"record = {{ {record} }}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def pionpub_binary() -> str:
    """The edge's pion publisher (edge/pionpub), built once by scripts/setup-pionpub.sh."""
    return built_binary("LIVECAM_PIONPUB_BIN", ROOT / "scripts" / "setup-pionpub.sh")


def start_edge(
    workdir: Path, config: Path, name: str = "edge", *, publisher: str = "libwebrtc"
) -> ManagedProcess:
    """Start `python -m edge run --config ...`; ``publisher`` "pion" builds pionpub first
    and hands it over (the config must say ``publisher = "pion"`` too)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if publisher == "pion":
        env["LIVECAM_PIONPUB_BIN"] = pionpub_binary()
    proc = ManagedProcess(
        name,
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        workdir / f"{name}.log",
        env,
    )
    proc.start()
    return proc


@dataclass
class Stack:
    """LiveKit + API, and whatever edges were started on them."""

    workdir: Path
    livekit: LiveKit
    api: Api
    edges: list[ManagedProcess] = field(default_factory=list)

    def close(self) -> None:
        """Stop everything, edges first."""
        for edge in self.edges:
            edge.stop()
        self.api.stop()
        self.livekit.stop()


@contextlib.contextmanager
def running_stack(
    workdir: Path, public_url: str | None = None, **livekit_args: Any
) -> Iterator[Stack]:
    """LiveKit and the API on free loopback ports; everything stopped on exit.
    ``public_url``: the LiveKit URL handed to browsers and edges (a proxy's)."""
    port, data_dir = prepare_api(workdir)
    livekit = start_livekit(
        workdir, webhook_url=f"http://127.0.0.1:{port}/api/livekit/webhook", **livekit_args
    )
    stack: Stack | None = None
    try:
        api = start_api(workdir, livekit, port, data_dir, public_url)
        stack = Stack(workdir, livekit, api)
        yield stack
    finally:
        if stack is not None:
            stack.close()
        else:
            livekit.stop()
