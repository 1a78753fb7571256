"""booth.toml on the boot partition: parsed, checked, rendered, and read by the booth itself."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from kiosk.config import CameraConfig, HardwareConfig, PresenceKind, VideoConfig, load_config
from kiosk.identity import forget_token
from provisioning.bootconfig import (
    CA_NAME,
    BootConfig,
    check_token,
    normalize_fingerprint,
    parse_boot_config,
    parse_ca_pem,
    parse_device_config,
    render_boot_config,
)
from provisioning.errors import BootConfigError

TOKEN = "vbe_" + "Ab3-_x" * 7
FINGERPRINT = "sha256:" + ":".join(["AB"] * 32)
BASE = 'server_url = "https://video.example.org"\nbranch = "Branch 12"\n'


def make_certificate(common_name: str = "Test CA") -> tuple[bytes, str, bytes]:
    """A real self-signed certificate: (PEM, its SHA-256 fingerprint, the key as PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    fingerprint = "sha256:" + cert.fingerprint(hashes.SHA256()).hex(":").upper()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), fingerprint, key_pem


def full_config() -> BootConfig:
    devices = parse_device_config(
        '[camera]\nkind = "v4l2"\ninput_format = "mjpeg"\n'
        '[audio]\ncapture = "echo-cancel-source"\nvolume = 0.8\n'
        '[hardware]\ncall_button = 17\ncall_button_led = 27\npresence = "distance"\n'
        "presence_trigger_pin = 5\npresence_echo_pin = 6\npresence_distance_m = 1.5\n"
        "[video]\nwidth = 1280\nheight = 720\n"
    )
    return BootConfig(
        server_url="https://video.example.org:8443",
        branch='Zweigstelle "Nord" \\ 12 — Ümlaut',
        server_ca_file=CA_NAME,
        enrolment_token=TOKEN,
        camera=devices.camera,
        audio=devices.audio,
        hardware=devices.hardware,
        video=devices.video,
    )


def test_a_full_configuration_round_trips_through_its_commented_file() -> None:
    config = full_config()
    text = render_boot_config(config)
    assert text.startswith("# Videobooth booth configuration")
    assert parse_boot_config(text) == config
    assert config.hardware == HardwareConfig(
        call_button=17,
        call_button_led=27,
        presence=PresenceKind.DISTANCE,
        presence_trigger_pin=5,
        presence_echo_pin=6,
        presence_distance_m=1.5,
    )
    assert config.camera == CameraConfig(kind="v4l2", input_format="mjpeg")
    assert config.video == VideoConfig(width=1280, height=720)
    # The token is one line of its own: the booth deletes exactly that line once enrolled.
    assert f'\nenrolment_token = "{TOKEN}"\n' in text
    assert TOKEN not in repr(config)


def test_a_fingerprint_configuration_without_token_or_devices_round_trips() -> None:
    config = BootConfig(
        server_url="http://127.0.0.1:8080",
        branch="B",
        server_fingerprint=FINGERPRINT.lower(),
    )
    assert config.server_fingerprint == FINGERPRINT  # kept in upper case
    text = render_boot_config(config)
    assert "enrolment_token =" not in text
    assert "[camera]" not in text
    assert parse_boot_config(text) == config


@given(
    branch=st.text(
        st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1
    ).filter(lambda b: b.strip() and len(b) <= 100 and b.isprintable()),
    token=st.from_regex(r"vbe_[A-Za-z0-9_-]{32,64}", fullmatch=True),
    digest=st.binary(min_size=32, max_size=32),
)
def test_any_valid_branch_token_and_fingerprint_round_trip(
    branch: str, token: str, digest: bytes
) -> None:
    config = BootConfig(
        server_url="https://video.example.org",
        branch=branch,
        server_fingerprint="sha256:" + digest.hex(":"),
        enrolment_token=token,
    )
    assert parse_boot_config(render_boot_config(config)) == config


def test_the_booth_reads_what_the_tool_writes_and_forgets_the_token(tmp_path: Path) -> None:
    pem, _, _ = make_certificate()
    (tmp_path / CA_NAME).write_bytes(pem)
    path = tmp_path / "booth.toml"
    config = full_config()
    path.write_text(render_boot_config(config), encoding="utf-8")

    booth = load_config(path)
    assert booth.server_url == config.server_url
    assert booth.server_ca_file == tmp_path / CA_NAME
    assert booth.branch == config.branch
    assert booth.enrolment_token == TOKEN
    assert booth.hardware == config.hardware
    assert booth.camera == config.camera
    assert booth.video == config.video
    assert booth.audio == config.audio

    forget_token(path)  # what the booth does once enrolled
    after = parse_boot_config(path.read_text(encoding="utf-8"))
    assert after.enrolment_token is None
    assert after == BootConfig(**{**config.__dict__, "enrolment_token": None})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'server_url = "x\nbranch = 1',
            "not valid TOML: Illegal character '\\n' (at line 1, column 16)",
        ),
        (
            'server_url = "http://video.example.org"\nbranch = "B"\n'
            f'server_fingerprint = "{FINGERPRINT}"\n',
            "server_url: 'http://video.example.org' must use https:// (plain http only to "
            "127.0.0.1 or localhost, for development)",
        ),
        (
            'server_url = "ftp://video.example.org"\nbranch = "B"\n',
            "server_url: 'ftp://video.example.org' is not an https:// address",
        ),
        (
            'server_url = "https://user:pw@video.example.org"\nbranch = "B"\n',
            "server_url: must not contain a user name or password",
        ),
        (
            'server_url = "https://video.example.org:99999"\nbranch = "B"\n',
            "server_url: 'https://video.example.org:99999' has an invalid port",
        ),
        (
            'server_url = "https://video.example.org/advisor/"\nbranch = "B"\n',
            "server_url: 'https://video.example.org/advisor/': give the server's address "
            "without a path, e.g. https://video.example.org",
        ),
        ('branch = "B"\n', "server_url: missing"),
        ('server_url = "https://video.example.org"\n', "branch: missing"),
        (BASE.replace('"Branch 12"', '"  "'), "branch: must not be empty"),
        (BASE.replace('"Branch 12"', '"' + "x" * 101 + '"'), "branch: 101 characters; at most 100"),
        (
            BASE.replace('"Branch 12"', '"a\\tb"'),
            "branch: must be printable characters on one line (no tabs, line breaks or "
            "control characters)",
        ),
        (BASE.replace('"Branch 12"', "12"), "branch: expected a string (in quotes)"),
        (
            BASE,
            "set server_ca_file (the organisation's CA certificate) or server_fingerprint "
            "(the server certificate's SHA-256): the booth must know how to recognise the "
            "server",
        ),
        (
            BASE + f'server_ca_file = "ca.pem"\nserver_fingerprint = "{FINGERPRINT}"\n',
            "set server_ca_file or server_fingerprint, not both",
        ),
        (
            BASE + 'server_ca_file = "../etc/ca.pem"\n',
            "server_ca_file: '../etc/ca.pem': expected a file name next to booth.toml, such "
            "as 'videobooth-ca.pem' (letters, digits, '.', '-', '_'; no folders)",
        ),
        (
            BASE + 'server_fingerprint = "AB:CD"\n',
            "server_fingerprint: must start with sha256: (the SHA-256 fingerprint of the "
            "server's certificate)",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT[:-3]}"\n',
            "server_fingerprint: has 31 bytes, a SHA-256 fingerprint has 32",
        ),
        (
            BASE + 'server_fingerprint = "sha256:' + ":".join(["0F"] * 20) + '"\n',
            "server_fingerprint: has 20 bytes, a SHA-256 fingerprint has 32 (that is a SHA-1 "
            "fingerprint: use SHA-256)",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT[:-2]}XY"\n',
            "server_fingerprint: 'XY' is not a hex byte; expected sha256: and 32 "
            "colon-separated hex bytes (sha256:AB:CD:...)",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT}"\nenrolment_token = "vbe_short"\n',
            "enrolment_token: not an enrolment token: it has 5 characters after vbe_, not 32 to "
            "64 (copy the whole token from the administration page)",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT}"\ncredential = "a.b"\n',
            "unknown setting(s): credential; a card's booth.toml holds server_url, "
            "server_ca_file, server_fingerprint, branch, enrolment_token, "
            "technician_pin_digest and [camera], [audio], [hardware], [video]",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT}"\n[camera]\nzoom = 2\n',
            "unknown setting(s) in [camera]: zoom",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT}"\n[hardware]\ncall_button = 40\n',
            "hardware.call_button: expected a BCM GPIO number from 0 to 27, got 40",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT}"\n[hardware]\npresence = "pir"\n',
            "hardware.presence_pin: required with presence = 'pir'",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT}"\n[video]\nwidth = 641\n',
            "video.width and video.height must be even (H.264 4:2:0)",
        ),
        (
            BASE + f'server_fingerprint = "{FINGERPRINT}"\naudio = 1\n',
            "[audio] must be a table",
        ),
    ],
)
def test_every_problem_is_one_line_naming_the_setting(text: str, message: str) -> None:
    with pytest.raises(BootConfigError) as caught:
        parse_boot_config(text)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("VBE_" + "a" * 40, "it does not start with vbe_"),
        ("vbe_" + "a" * 65, "it has 65 characters after vbe_, not 32 to 64"),
        ("vbe_" + "a" * 39 + "!", "it has characters other than letters, digits, - and _"),
    ],
)
def test_a_malformed_token_is_explained_without_showing_it(token: str, why: str) -> None:
    with pytest.raises(BootConfigError) as caught:
        check_token(token)
    assert caught.value.setting == "enrolment_token"
    assert caught.value.reason.startswith(f"not an enrolment token: {why} (")
    assert token[4:12] not in str(caught.value)


@pytest.mark.parametrize(
    "pasted",
    [
        FINGERPRINT.lower(),
        "SHA256 Fingerprint=" + FINGERPRINT.removeprefix("sha256:"),
        "sha256 Fingerprint=" + FINGERPRINT.removeprefix("sha256:").lower() + "\n",
        FINGERPRINT.removeprefix("sha256:"),
    ],
)
def test_a_fingerprint_is_taken_as_openssl_prints_it(pasted: str) -> None:
    assert normalize_fingerprint(pasted) == FINGERPRINT


def test_a_ca_certificate_is_checked_and_fingerprinted() -> None:
    pem, fingerprint, _ = make_certificate()
    assert parse_ca_pem(pem) == [fingerprint]
    other, other_fingerprint, _ = make_certificate("Intermediate")
    bundle = b"subject=CN = Test CA\n" + pem + b"\n" + other
    assert parse_ca_pem(bundle) == [fingerprint, other_fingerprint]


def _pem_of(der: bytes) -> bytes:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n".encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "ca.pem: holds no certificate (no -----BEGIN CERTIFICATE----- line)"),
        (
            b"\x30\x82\x01\x00" + bytes(256),
            "ca.pem: is a binary (DER) certificate; convert it to PEM with 'openssl x509 "
            "-inform der -in CA.der -out CA.pem'",
        ),
        (
            "Zertifikat ü".encode("latin-1"),
            "ca.pem: not a PEM file (it is not plain text with -----BEGIN CERTIFICATE-----)",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nMIIB!!\n-----END CERTIFICATE-----\n",
            "ca.pem: certificate 1 is not valid base64 between its BEGIN and END lines",
        ),
        (
            _pem_of(b"\x04\x03abc"),
            "ca.pem: certificate 1 is not an X.509 certificate (expected a DER SEQUENCE of "
            "certificate, algorithm and signature)",
        ),
        (
            # A SEQUENCE, but not of the three parts of a certificate.
            _pem_of(b"\x30\x06\x02\x01\x01\x02\x01\x02"),
            "ca.pem: certificate 1 is not an X.509 certificate (expected a DER SEQUENCE of "
            "certificate, algorithm and signature)",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nMIIBIjAN\n",
            "ca.pem: certificate 1 has no -----END CERTIFICATE----- line (is the file cut short?)",
        ),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
            "ca.pem: holds a CERTIFICATE REQUEST, not a CERTIFICATE; give the organisation's CA "
            "certificate",
        ),
        (b"x" * (1024 * 1024 + 1), "ca.pem: 1048577 bytes is too large for a CA certificate"),
    ],
)
def test_a_bad_ca_file_is_one_line(content: bytes, message: str) -> None:
    with pytest.raises(BootConfigError) as caught:
        parse_ca_pem(content, name="ca.pem")
    assert str(caught.value).startswith(message)


def test_a_truncated_certificate_is_not_a_certificate() -> None:
    pem, _, _ = make_certificate()
    der = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    with pytest.raises(BootConfigError, match=r"certificate 1 is not an X\.509 certificate"):
        parse_ca_pem(_pem_of(der[:-10]))


def test_a_private_key_never_goes_onto_a_card() -> None:
    pem, _, key = make_certificate()
    with pytest.raises(BootConfigError) as caught:
        parse_ca_pem(pem + key, name="org.pem")
    assert str(caught.value) == (
        "org.pem: holds a private key; give the CA certificate only (a key never goes onto a card)"
    )


def test_a_device_file_holds_device_sections_only() -> None:
    with pytest.raises(BootConfigError) as caught:
        parse_device_config('server_url = "https://x"\n[camera]\nkind = "auto"\n')
    assert str(caught.value) == (
        "unknown section(s) or setting(s): server_url; a device file holds only [camera], "
        "[audio], [hardware] and [video]"
    )
    assert parse_device_config("").sections == []
    assert parse_device_config('[video]\nfps = 25\n[camera]\nkind = "auto"\n').sections == [
        "camera",
        "video",
    ]


def test_the_technician_pin_digest_goes_onto_the_card_and_the_booth_reads_it(
    tmp_path: Path,
) -> None:
    from kiosk.config import load_config
    from kiosk.flow import pin_digest
    from provisioning.bootconfig import BootConfig, parse_boot_config, render_boot_config

    digest = pin_digest("2468")
    config = BootConfig(
        server_url="https://video.example.org",
        branch="Branch 12",
        server_fingerprint="sha256:" + ":".join(["AB"] * 32),
        technician_pin_digest=digest,
    )
    text = render_boot_config(config)
    assert parse_boot_config(text) == config
    (tmp_path / "booth.toml").write_text(text)
    assert load_config(tmp_path / "booth.toml").technician_pin_digest == digest
    with pytest.raises(ValueError, match="technician_pin_digest: expected 64 hex digits"):
        BootConfig(
            server_url="https://video.example.org",
            branch="Branch 12",
            server_fingerprint="sha256:" + ":".join(["AB"] * 32),
            technician_pin_digest="2468",
        )
