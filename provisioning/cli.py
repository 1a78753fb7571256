"""``videobooth-provision``: prepare a booth's card (or image), check it, render a QR code.

    videobooth-provision prepare /media/tech/bootfs --server-url https://video.example.org \\
        --ca-file org-ca.pem --branch "Branch 12" --token-file token.txt
    videobooth-provision check booth.img
    videobooth-provision qr vbe_... --out enrol.svg

Every problem is one line on standard error and a non-zero exit (2: wrong use, 1: a bad card
or configuration); nothing is written unless everything checked out. Tokens are never printed
in full.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

import segno

from provisioning.bootconfig import (
    CA_NAME,
    CONFIG_NAME,
    TEMPLATE_NAME,
    BootConfig,
    BootConfigError,
    parse_devices,
    read_back,
    render,
)
from provisioning.fat import BootPartition, TargetError, open_target

PROG = "videobooth-provision"


class ProvisionError(Exception):
    """One line for the technician, and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _short(token: str | None) -> str:
    return f"{token[:8]}… (hidden)" if token else "none"


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProvisionError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{what} {path} cannot be read: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare", help="write booth.toml onto a boot partition or image")
    prepare.add_argument("target", type=Path, help="mounted boot partition, or an image file")
    prepare.add_argument("--server-url", required=True)
    trust = prepare.add_mutually_exclusive_group(required=True)
    trust.add_argument("--ca-file", type=Path, help="the organisation's CA certificate (PEM)")
    trust.add_argument("--fingerprint", help="the server certificate's sha256:AA:BB:... value")
    prepare.add_argument("--branch", required=True)
    token = prepare.add_mutually_exclusive_group()
    token.add_argument("--token", help="the enrolment token (or use --token-file)")
    token.add_argument("--token-file", type=Path, help="a file holding the enrolment token")
    prepare.add_argument("--device-config", type=Path, help="[camera]/[audio]/[hardware] TOML")
    prepare.add_argument("--force", action="store_true", help="skip the boot partition check")
    prepare.add_argument("--quiet", action="store_true", help="no progress lines")
    check = sub.add_parser("check", help="read booth.toml back and say what is wrong")
    check.add_argument("target", type=Path)
    qr = sub.add_parser("qr", help="render an enrolment token as a QR code")
    qr.add_argument("token")
    qr.add_argument("--out", default="-", help="file.svg, file.png, or - for the terminal")
    return parser


def _progress(quiet: bool) -> Callable[[int, str], None]:
    def say(percent: int, step: str) -> None:
        if not quiet:
            print(f"[{percent:3d}%] {step}", file=sys.stderr, flush=True)

    return say


def _prepare(args: argparse.Namespace) -> int:
    say = _progress(args.quiet)
    say(0, "checking the settings")
    token = args.token
    if args.token_file is not None:
        token = _read_text(args.token_file, "the token file").strip()
    ca_pem = _read_text(args.ca_file, "the CA file") if args.ca_file else None
    devices = (
        parse_devices(_read_text(args.device_config, "the device settings"))
        if args.device_config
        else None
    )
    config = BootConfig(
        server_url=args.server_url,
        branch=args.branch,
        server_fingerprint=args.fingerprint,
        ca_pem=ca_pem,
        enrolment_token=token,
        devices=devices,
    )
    text = render(config)
    say(20, f"opening {args.target}")
    target = open_target(args.target)
    if not args.force and target.read(TEMPLATE_NAME) is None and target.read(CONFIG_NAME) is None:
        raise ProvisionError(
            f"{target.describe()} is not a Videobooth boot partition (no {TEMPLATE_NAME}); "
            "use --force if you are sure"
        )
    if ca_pem is not None:
        say(40, f"writing {CA_NAME}")
        target.write(CA_NAME, ca_pem.encode())
    say(70, f"writing {CONFIG_NAME}")
    target.write(CONFIG_NAME, text.encode())
    say(90, "reading it back")
    _verify(target)
    say(100, "done")
    print(f"prepared {target.describe()} for {config.branch} ({config.server_url})")
    return 0


def _verify(target: BootPartition) -> BootConfig:
    raw = target.read(CONFIG_NAME)
    if raw is None:
        raise ProvisionError(f"{target.describe()} has no {CONFIG_NAME}")
    ca = target.read(CA_NAME)
    try:
        return read_back(raw.decode("utf-8"), ca.decode("utf-8") if ca else None)
    except UnicodeDecodeError:
        raise ProvisionError(f"{CONFIG_NAME} on {target.describe()} is not text") from None


def _check(args: argparse.Namespace) -> int:
    target = open_target(args.target)
    config = _verify(target)
    print(f"{target.describe()}: OK")
    print(f"  server:    {config.server_url}")
    print(f"  trust:     {config.fingerprint}")
    print(f"  branch:    {config.branch}")
    print(f"  token:     {_short(config.enrolment_token)}")
    print(f"  devices:   {', '.join(sorted(config.devices or {})) or 'defaults'}")
    return 0


def _qr(args: argparse.Namespace) -> int:
    token = args.token.strip()
    if not token.startswith("vbe_") or not 36 <= len(token) <= 68:
        raise ProvisionError("that is not an enrolment token (they start with vbe_)", code=2)
    code = segno.make(token, error="m")
    if args.out == "-":
        buffer = io.StringIO()
        code.terminal(out=buffer, compact=True)
        print(buffer.getvalue(), end="")
        return 0
    out = Path(args.out)
    if out.suffix not in (".svg", ".png"):
        raise ProvisionError("--out must end in .svg or .png (or be - for the terminal)", code=2)
    code.save(str(out), scale=8, border=4)
    print(f"wrote {out} for token {_short(token)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "prepare":
            return _prepare(args)
        if args.command == "check":
            return _check(args)
        return _qr(args)
    except ProvisionError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.code
    except (BootConfigError, TargetError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
