"""``videobooth-provision``: the field technician's tool for a booth's boot partition."""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

import segno

from provisioning.bootconfig import (
    CA_NAME,
    CONFIG_NAME,
    TEMPLATE_NAME,
    BootConfig,
    check_token,
    normalize_fingerprint,
    parse_boot_config,
    parse_ca_pem,
    parse_device_config,
    render_boot_config,
)
from provisioning.errors import BootConfigError, BootPartitionError, ProvisioningError
from provisioning.fat import BootPartition, ImagePartition, open_partition

log = logging.getLogger(__name__)

PROG = "videobooth-provision"
#: How much of a token the tool ever shows.
TOKEN_SHOWN = 8
EXIT_BAD = 1
EXIT_USAGE = 2

DESCRIPTION = """\
Prepare a Videobooth booth's SD card (or its image file before flashing) for a branch:
the server's address, how the booth recognises the server, the branch, the one-time
enrolment token and the booth's devices go into booth.toml on the boot partition.
Nothing is typed on the booth itself."""

EPILOG = f"""\
examples:
  {PROG} prepare /media/$USER/bootfs --server-url https://video.example.org \\
      --ca-file organisation-ca.pem --branch "Branch 12" --token-file token.txt
  {PROG} prepare booth.img --server-url https://video.example.org \\
      --fingerprint sha256:AB:CD:... --branch "Branch 12"
  {PROG} check booth.img
  {PROG} qr vbe_... --out enrolment.svg

exit status: 0 done, 1 the card, image or a file is wrong, 2 the command line is wrong.
See docs/technician.md for the whole procedure, from flashing to the first call."""

PREPARE_EPILOG = f"""\
TARGET is the card's boot partition, mounted (a folder such as /media/$USER/bootfs), or an
image file (booth.img) before it is flashed: the tool writes into the image's FAT partition
with mtools, without root. Everything is checked before anything is written; on an error the
card or image stays as it was.

Without --token or --token-file the booth shows "Set up this booth" at first boot and reads
the enrolment QR code (from the administration page, or '{PROG} qr') with its camera.
--token-file - reads the token from standard input (it stays out of the shell's history)."""


class UsageError(ProvisioningError):
    """The command line is wrong (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROG}: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=formatter)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log each step (and every mtools command)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser(
        "prepare",
        help="write booth.toml (and the CA certificate) onto a card or an image file",
        description="Write booth.toml (and the CA certificate) onto a booth's boot partition.",
        epilog=PREPARE_EPILOG,
        formatter_class=formatter,
    )
    prepare.add_argument("target", metavar="TARGET", type=Path, help="boot partition or image")
    prepare.add_argument(
        "--server-url",
        required=True,
        metavar="URL",
        help="the Videobooth server's address, https://host[:port] without a path (http only "
        "to 127.0.0.1 or localhost)",
    )
    trust = prepare.add_mutually_exclusive_group(required=True)
    trust.add_argument(
        "--ca-file",
        type=Path,
        metavar="PATH",
        help=f"the organisation's CA certificate (PEM); copied onto the card as {CA_NAME}",
    )
    trust.add_argument(
        "--fingerprint",
        metavar="F",
        help="instead: the server certificate's SHA-256, sha256:AB:CD:... (32 bytes)",
    )
    prepare.add_argument(
        "--branch", required=True, metavar="NAME", help="the branch the booth stands in"
    )
    token = prepare.add_mutually_exclusive_group()
    token.add_argument("--token", metavar="TOKEN", help="the one-time enrolment token (vbe_...)")
    token.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="a file holding the enrolment token (- : standard input)",
    )
    prepare.add_argument(
        "--technician-pin-digest",
        metavar="DIGEST",
        help="the technician PIN's digest, as printed by 'videobooth-booth --pin-digest'",
    )
    prepare.add_argument(
        "--device-config",
        type=Path,
        metavar="PATH",
        help="a TOML file with the booth's [camera], [audio], [hardware] and [video] settings",
    )
    prepare.add_argument(
        "--force",
        action="store_true",
        help=f"write even if TARGET has no {TEMPLATE_NAME} (not a Videobooth boot partition?)",
    )
    prepare.add_argument("--quiet", action="store_true", help="no progress lines")

    check = commands.add_parser(
        "check",
        help="read booth.toml back: what is wrong, or what is on the card",
        description="Read booth.toml (and the CA certificate) from a card or an image file and "
        "say exactly what is wrong, or summarise it. Exit status 0: fine, 1: not.",
    )
    check.add_argument("target", metavar="TARGET", type=Path, help="boot partition or image")

    qr = commands.add_parser(
        "qr",
        help="the enrolment QR code for a token, for the booth's camera",
        description="Render an enrolment token as the QR code the booth reads at first boot.",
    )
    qr.add_argument("token", metavar="TOKEN", help="the enrolment token (vbe_...), or - to read it")
    qr.add_argument(
        "--out",
        default="-",
        metavar="FILE",
        help="FILE.svg, FILE.png, or - for the terminal (default)",
    )
    return parser


def shown(token: str) -> str:
    """A token as the tool shows it: its first characters only."""
    return token[:TOKEN_SHOWN] + "…"


class Progress:
    """A line per step, with percent, on standard error."""

    def __init__(self, stream: TextIO, *, quiet: bool) -> None:
        self.stream = stream
        self.quiet = quiet

    def step(self, percent: int, text: str) -> None:
        if not self.quiet:
            print(f"[{percent:3d}%] {text}", file=self.stream, flush=True)


def _read_file(path: Path, option: str, stdin: TextIO) -> bytes:
    if str(path) == "-":
        return stdin.read().encode()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ProvisioningError(f"{option}: {path} does not exist") from None
    except IsADirectoryError:
        raise ProvisioningError(f"{option}: {path} is a folder, not a file") from None
    except OSError as exc:
        raise ProvisioningError(f"{option}: cannot read {path}: {exc.strerror or exc}") from exc


def _read_text(path: Path, option: str, stdin: TextIO) -> str:
    try:
        return _read_file(path, option, stdin).decode("utf-8")
    except UnicodeDecodeError:
        raise ProvisioningError(f"{option}: {path} is not UTF-8 text") from None


def _as_usage(exc: BootConfigError, options: Mapping[str, str]) -> UsageError:
    """A setting's error as the command-line option the technician typed."""
    if exc.setting is not None and exc.setting in options:
        return UsageError(f"{options[exc.setting]}: {exc.reason}")
    return UsageError(str(exc))


def _summary(config: BootConfig, ca_fingerprints: Sequence[str]) -> list[str]:
    if config.server_ca_file is not None:
        trust = f"CA certificate {config.server_ca_file}, {ca_fingerprints[0]}"
        if len(ca_fingerprints) > 1:
            trust += f" (and {len(ca_fingerprints) - 1} more)"
    else:
        trust = f"certificate fingerprint {config.server_fingerprint}"
    if config.enrolment_token is not None:
        enrolment = f"yes ({shown(config.enrolment_token)}): the booth enrols at first boot"
    else:
        enrolment = "no: the booth asks for the enrolment QR code (or has enrolled already)"
    sections = config.devices.sections
    devices = ", ".join(sections) + " (the rest: defaults)" if sections else "the booth's defaults"
    return [
        f"  server:          {config.server_url}",
        f"  server check:    {trust}",
        f"  branch:          {config.branch}",
        f"  enrolment token: {enrolment}",
        f"  devices:         {devices}",
    ]


def _prepare(args: argparse.Namespace, environ: Mapping[str, str], stdin: TextIO) -> int:
    token_option = "--token-file" if args.token_file is not None else "--token"
    token: str | None = args.token
    if args.token_file is not None:
        token = _read_text(args.token_file, "--token-file", stdin).strip()
    options = {
        "server_url": "--server-url",
        "server_fingerprint": "--fingerprint",
        "branch": "--branch",
        "enrolment_token": token_option,
        "technician_pin_digest": "--technician-pin-digest",
    }
    try:
        fingerprint = None
        if args.fingerprint is not None:
            fingerprint = normalize_fingerprint(args.fingerprint)
        config = BootConfig(
            server_url=args.server_url,
            branch=args.branch.strip(),
            server_ca_file=CA_NAME if args.ca_file is not None else None,
            server_fingerprint=fingerprint,
            enrolment_token=token,
            technician_pin_digest=args.technician_pin_digest,
        )
    except BootConfigError as exc:
        raise _as_usage(exc, options) from None

    ca_data: bytes | None = None
    ca_fingerprints: list[str] = []
    if args.ca_file is not None:
        ca_data = _read_file(args.ca_file, "--ca-file", stdin)
        ca_fingerprints = parse_ca_pem(ca_data, name=str(args.ca_file))
    if args.device_config is not None:
        text = _read_text(args.device_config, "--device-config", stdin)
        try:
            devices = parse_device_config(text)
        except BootConfigError as exc:
            raise BootConfigError(f"{args.device_config}: {exc}") from None
        config = dataclasses.replace(
            config,
            camera=devices.camera,
            audio=devices.audio,
            hardware=devices.hardware,
            video=devices.video,
        )
    rendered = render_boot_config(config)
    if parse_boot_config(rendered) != config:
        raise ProvisioningError("internal error: booth.toml does not read back as written")

    partition = open_partition(args.target, environ=environ)
    if not args.force and not partition.exists(TEMPLATE_NAME):
        raise BootPartitionError(
            f"{partition.description} is not a Videobooth boot partition: it has no "
            f"{TEMPLATE_NAME} (the wrong partition or drive? --force writes anyway)"
        )
    replacing = partition.exists(CONFIG_NAME)

    # Everything so far only read, quickly: an error there is one line and nothing changed.
    # Writing (into an image: an mtools run per file) is what shows progress.
    progress = Progress(sys.stderr, quiet=args.quiet)
    # The certificate first: a booth.toml never names a CA file that is not there yet.
    writes = [(CA_NAME, ca_data)] if ca_data is not None else []
    writes.append((CONFIG_NAME, rendered.encode()))
    for number, (name, data) in enumerate(writes):
        percent = 70 * number // len(writes)
        progress.step(percent, f"writing {name} into {partition.description}")
        partition.write(name, data)
    progress.step(70, "reading it back")
    for name, data in writes:
        if partition.read(name) != data:
            raise BootPartitionError(
                f"{partition.description}: {name} reads back differently from what was "
                "written (a failing card?)"
            )
    progress.step(100, "done")

    verb = "replaced booth.toml on" if replacing else "prepared"
    print(f"{verb} {partition.description} for {config.branch}")
    print("\n".join(_summary(config, ca_fingerprints)))
    if isinstance(partition, ImagePartition):
        # The image's old block map leaves out blocks that were empty when it was made, such
        # as the ones booth.toml now fills: bmaptool would flash a card without it.
        image = partition.image
        print(
            f"before flashing, make a new block map: bmaptool create -o {image}.bmap {image} "
            "(or flash it with Raspberry Pi Imager)"
        )
    return 0


def _check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    partition = open_partition(args.target, environ=environ)
    where = partition.description
    config = read_card(partition)
    ca_fingerprints: list[str] = []
    if config.server_ca_file is not None:
        data = partition.read(config.server_ca_file)
        if data is None:
            raise BootPartitionError(
                f"{where}: {CONFIG_NAME} names server_ca_file = {config.server_ca_file!r} but "
                "there is no such file next to it"
            )
        ca_fingerprints = parse_ca_pem(data, name=f"{where}: {config.server_ca_file}")
    print(f"{where}: {CONFIG_NAME} is fine")
    print("\n".join(_summary(config, ca_fingerprints)))
    return 0


def read_card(partition: BootPartition) -> BootConfig:
    """The checked ``booth.toml`` of a boot partition."""
    where = partition.description
    raw = partition.read(CONFIG_NAME)
    if raw is None:
        raise BootPartitionError(
            f"{where} has no {CONFIG_NAME}: prepare the card first ('{PROG} prepare')"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BootConfigError(f"{where}: {CONFIG_NAME} is not UTF-8 text") from None
    try:
        return parse_boot_config(text)
    except BootConfigError as exc:
        raise BootConfigError(f"{where}: {CONFIG_NAME}: {exc}") from None


def _qr(args: argparse.Namespace, stdin: TextIO) -> int:
    given: str = args.token
    token = stdin.readline().strip() if given == "-" else given.strip()
    try:
        check_token(token)
    except BootConfigError as exc:
        raise UsageError(f"TOKEN: {exc.reason}") from None
    code = segno.make(token, error="m")
    if args.out == "-":
        code.terminal(out=sys.stdout, compact=True)
        return 0
    out = Path(args.out)
    kind = out.suffix.lower().lstrip(".")
    if kind not in ("svg", "png"):
        raise UsageError(f"--out: {out} must end in .svg or .png (or be - for the terminal)")
    buffer = io.BytesIO()
    code.save(buffer, kind=kind, scale=8, border=4)
    try:
        out.write_bytes(buffer.getvalue())
    except OSError as exc:
        raise ProvisioningError(f"--out: cannot write {out}: {exc.strerror or exc}") from exc
    print(f"wrote {out}: the enrolment QR code for {shown(token)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The console script; every failure is one line on standard error and a non-zero exit."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already reported in one line
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format=f"{PROG}: %(message)s",
    )
    environ = dict(os.environ)
    try:
        if args.command == "prepare":
            return _prepare(args, environ, sys.stdin)
        if args.command == "check":
            return _check(args, environ)
        return _qr(args, sys.stdin)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ProvisioningError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_BAD
    except BrokenPipeError:
        # The reader went away (``qr | head``): nothing more to say, and no traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BAD
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
