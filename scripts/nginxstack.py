"""Debian's nginx with nginx/livecam.conf in front of a running stack, for the tests.

The site file is the one users install; only its server name, listen ports, certificate
paths and upstream ports are rewritten (each rewrite must match exactly once, so a change
to the file that the tests would silently skip fails loudly instead). nginx runs as a
child process (no daemon, no root paths): its prefix, pid, logs and temp dirs live in the
work directory.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import pwd
import shutil
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scripts.devstack import ROOT, ManagedProcess, StackError, free_tcp_port

SITE = ROOT / "nginx" / "livecam.conf"
NGINX = "/usr/sbin/nginx"


@dataclass
class Nginx:
    """A running nginx: https on ``https_port``, http (redirect only) on ``http_port``."""

    https_port: int
    http_port: int
    #: The CA that signed nginx's certificate: what clients must trust.
    cert: Path
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this nginx's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    @property
    def livekit_url(self) -> str:
        """What LIVEKIT_PUBLIC_URL is behind this nginx."""
        return f"wss://127.0.0.1:{self.https_port}"


def write_self_signed_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a P-256 server certificate for 127.0.0.1/localhost, one day:
    (CA cert, server cert chain, server key) paths. Clients trust the CA (rustls, as in
    the LiveKit SDK, refuses a CA certificate used as the server's own)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "livecam test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def render_site(
    site: str,
    *,
    https_port: int,
    http_port: int,
    cert: Path,
    key: Path,
    api_ports: Sequence[int],
    livekit_ports: Sequence[int],
) -> str:
    """nginx/livecam.conf with this machine's names, ports and paths; every upstream
    lists the given API replicas / LiveKit nodes (the primary one: the rest as backup)."""
    api = [f"server 127.0.0.1:{p};" for p in api_ports]
    primary = api[:1] + [f"server 127.0.0.1:{p} backup;" for p in api_ports[1:]]
    livekit = [f"server 127.0.0.1:{p};" for p in livekit_ports]
    rewrites = [
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("listen [::]:443 ssl http2;\n", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;\n", ""),
        ("/etc/letsencrypt/live/cams.example.com/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/cams.example.com/privkey.pem", str(key)),
        (
            "upstream livecam_api {\n    server 127.0.0.1:8000;",
            "upstream livecam_api {\n    " + "\n    ".join(api),
        ),
        (
            "upstream livecam_api_primary {\n    server 127.0.0.1:8000;",
            "upstream livecam_api_primary {\n    " + "\n    ".join(primary),
        ),
        (
            "upstream livecam_livekit {\n    server 127.0.0.1:7880;",
            "upstream livecam_livekit {\n    " + "\n    ".join(livekit),
        ),
    ]
    for old, new in rewrites:
        if site.count(old) != 1:
            raise StackError(f"nginx/livecam.conf: expected {old!r} exactly once")
        site = site.replace(old, new)
    return site


def _main_config(workdir: Path, site: Path) -> str:
    temp = workdir / "temp"
    # Workers as the invoking user (not nginx's default `nobody`), so they can use the
    # temp dirs created here; nginx ignores the line when not started as root.
    user = pwd.getpwuid(os.getuid()).pw_name
    return f"""user {user};
worker_processes 1;
error_log {workdir / "error.log"} info;
pid {workdir / "nginx.pid"};
events {{ worker_connections 256; }}
http {{
    access_log {workdir / "access.log"};
    # Which upstream (API replica, LiveKit node) served each request, for the tests.
    log_format livecam_upstream '"$request" $upstream_addr $status';
    access_log {workdir / "upstream.log"} livecam_upstream;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    default_type application/octet-stream;
    include {site};
}}
"""


@contextlib.contextmanager
def running_nginx(
    workdir: Path,
    *,
    api_port: int | Sequence[int],
    livekit_port: int | Sequence[int],
    https_port: int | None = None,
) -> Iterator[Nginx]:
    """nginx with the livecam site in front of the API and LiveKit (one port each, or
    several replicas / nodes); stopped on exit."""
    binary = shutil.which("nginx") or NGINX
    if not Path(binary).is_file():
        raise StackError("nginx is missing: `./run test` installs Debian's nginx-light")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "temp").mkdir(exist_ok=True)
    ca, cert, key = write_self_signed_cert(workdir / "tls")
    https_port = https_port or free_tcp_port()
    http_port = free_tcp_port()
    site = workdir / "livecam.conf"
    site.write_text(
        render_site(
            SITE.read_text(),
            https_port=https_port,
            http_port=http_port,
            cert=cert,
            key=key,
            api_ports=[api_port] if isinstance(api_port, int) else list(api_port),
            livekit_ports=[livekit_port] if isinstance(livekit_port, int) else list(livekit_port),
        )
    )
    conf = workdir / "nginx.conf"
    conf.write_text(_main_config(workdir, site))
    process = ManagedProcess(
        "nginx",
        [binary, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
        workdir / "nginx.log",
        {"PATH": "/usr/sbin:/usr/bin:/bin"},
    )
    process.start()
    nginx = Nginx(https_port, http_port, ca, process)
    try:
        process.wait_until(lambda: _accepts(https_port), "nginx https", timeout=20)
        yield nginx
    finally:
        process.stop()


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
