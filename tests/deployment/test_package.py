"""The server's Debian package, installed as an operator would, under a real systemd.

``packaging/build-deb`` builds the package twice, as two versions; a fresh Debian 12 root
(mmdebstrap: minbase, systemd and dbus; cached in ``~/.cache/videobooth-package`` by its
inputs) boots with ``systemd-nspawn -b``: systemd as the container's PID 1, its own network
with only a loopback. The test works inside it through ``nsenter`` into the container's
namespaces: apt (which alone uses this machine's network, for Debian's archive), systemctl,
journalctl and the server's command, and reaches the server on the container's loopback.

Shown, in order: ``apt install ./videobooth-server_*.deb`` makes the videobooth user, its folders
and the configuration with their owners and modes, and migrates the database; ``systemctl start
videobooth`` gives a running, sandboxed ``Type=notify`` service whose ``/api/v1/health``
answers and whose watchdog is fed; ``systemctl stop`` ends it cleanly; an account made with
``videobooth-server user add`` survives the upgrade to the second build, which migrated the
database, kept the administrator's configuration and the server key, and restarted the
service; ``apt remove`` keeps the data and ``apt purge`` deletes it.

systemd-nspawn rather than a QEMU guest: the same systemd, unit and sandbox, without a kernel,
an initramfs and a disk image to make; it boots in seconds and needs no /dev/kvm. Its limits:
the container shares this machine's kernel, so the kernel's part of the sandbox is this
kernel's.

It takes a few minutes and needs root, so it runs in CI (``CI=true``, where a missing tool
fails it) or when ``VIDEOBOOTH_PACKAGE_TEST=1``; otherwise it is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.components import in_ci, require, unavailable

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(20 * 60)]

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "packaging" / "build-deb"
CACHE = Path(os.environ.get("VIDEOBOOTH_PACKAGE_CACHE", Path.home() / ".cache/videobooth-package"))
#: Bump when the root's recipe changes in a way the cache key cannot see.
ROOT_RECIPE = 1
#: A fresh Debian 12 as a server starts: the minimal base, systemd as init and D-Bus.
ROOT_PACKAGES = ("systemd-sysv", "dbus")
BUILD_SECONDS = 10 * 60
TOOLS = {
    "mmdebstrap": "makes the fresh Debian 12 root (mmdebstrap)",
    "systemd-nspawn": "boots it with systemd as PID 1 (systemd-container)",
    "nsenter": "runs commands inside it (util-linux)",
    "zstd": "compresses the cached root (zstd)",
    "dpkg-buildpackage": "builds the package (dpkg-dev)",
    "dh": "builds the package (debhelper)",
    "dh_virtualenv": "puts the server's Python into the package (dh-virtualenv)",
}
#: The environment of commands inside the container: this, and this machine's proxy settings.
INSIDE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
HEALTH = "http://127.0.0.1:8080/api/v1/health"
LOGIN = "http://127.0.0.1:8080/api/v1/auth/login"
PASSWORD = "a password for the package test"
#: What an administrator adds to the configuration before the upgrade.
ADMIN_LINE = "# the administrator was here"


def _enabled() -> None:
    if not in_ci() and os.environ.get("VIDEOBOOTH_PACKAGE_TEST") != "1":
        pytest.skip("the package test takes minutes: set VIDEOBOOTH_PACKAGE_TEST=1 (CI runs it)")
    for tool, why in TOOLS.items():
        require(tool, why)
    if os.geteuid() != 0:
        unavailable("the package test needs root (it boots a container and installs into it)")


# --- the packages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Debs:
    first: Path
    second: Path

    @staticmethod
    def version(deb: Path) -> str:
        return _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def _build(out: Path, *args: str) -> Path:
    log = out / "build.log"
    started = time.monotonic()
    with log.open("w") as sink:
        done = subprocess.run(
            [str(BUILD), "--out", str(out), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=BUILD_SECONDS,
            check=False,
        )
    text = log.read_text(errors="replace")
    print(f"package build: {time.monotonic() - started:.0f} s\n{text}")
    assert done.returncode == 0, f"packaging/build-deb failed:\n{text[-3000:]}"
    # Progress lines, each with its time.
    assert re.search(r"^\[ *\d+s\] done: .*\.deb", text, re.MULTILINE), text
    (deb,) = out.glob("videobooth-server_*.deb")
    return deb


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Debs:
    """This commit's package (its own version), and the same built again as the next version."""
    _enabled()
    first = _build(tmp_path_factory.mktemp("deb1"))
    version = Debs.version(first)
    second = _build(tmp_path_factory.mktemp("deb2"), "--version", f"{version}+upgrade")
    return Debs(first, second)


# --- the Debian root and its container -----------------------------------------------------------


def _host_mirror(suite: str, default: str) -> str:
    """The archive this machine's apt uses for ``suite`` (one-line and deb822 sources)."""
    apt = Path("/etc/apt")
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]\s*", "", line.split("#")[0]).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                    return words[1]
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = {}
            for line in stanza.splitlines():
                key, _, value = line.partition(":")
                if value and not line.startswith(("#", " ")):
                    fields[key.strip().lower()] = value.split()
            if suite in fields.get("suites", []) and fields.get("uris"):
                return fields["uris"][0]
    return default


def _host_apt_setting(name: str) -> str:
    """A setting of this machine's apt configuration, or ''."""
    done = subprocess.run(["apt-config", "dump", name], capture_output=True, text=True, check=False)
    found = re.search(rf'^{re.escape(name)} "(.*)";$', done.stdout, re.MULTILINE | re.IGNORECASE)
    return found.group(1) if found else ""


def _debian_root() -> Path:
    """A fresh Debian 12 root as a tarball, made once per recipe (cached)."""
    mirror = _host_mirror("bookworm", "http://deb.debian.org/debian")
    security = _host_mirror("bookworm-security", "http://deb.debian.org/debian-security")
    sources = [
        f"deb {mirror} bookworm main",
        f"deb {mirror} bookworm-updates main",
        f"deb {security} bookworm-security main",
    ]
    version = _run(["mmdebstrap", "--version"]).strip()
    key = hashlib.sha256(
        json.dumps([ROOT_RECIPE, ROOT_PACKAGES, sources, version]).encode()
    ).hexdigest()[:16]
    tarball = CACHE / f"debian12-root-{key}.tar.zst"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.zst")
    started = time.monotonic()
    done = subprocess.run(
        [
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(ROOT_PACKAGES)}",
            "bookworm",
            str(partial),
            *sources,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"mmdebstrap failed:\n{done.stderr[-3000:]}"
    partial.rename(tarball)
    for old in CACHE.glob("debian12-root-*.tar.zst"):
        if old != tarball:
            old.unlink()
    print(f"Debian 12 root made in {time.monotonic() - started:.0f} s: {tarball}")
    return tarball


class Container:
    """A Debian root booted with ``systemd-nspawn -b``; commands run in it through nsenter."""

    def __init__(self, root: Path, console: Path) -> None:
        self.root = root
        self.console = console
        self.name = f"videobooth-package-{os.getpid()}"
        with console.open("wb") as sink:
            self.process = subprocess.Popen(
                [
                    "systemd-nspawn",
                    f"--directory={root}",
                    f"--machine={self.name}",
                    "--boot",
                    # Not registered with machined, no scope of its own: this machine's PID 1
                    # need not be systemd.
                    "--register=no",
                    "--keep-unit",
                    # Only a loopback: the server's port 8080 is the container's own.
                    "--private-network",
                    "--resolv-conf=copy-host",
                    "--console=read-only",
                ],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.leader = 0

    def boot(self, timeout: float = 90) -> None:
        """Wait for the container's systemd to finish starting the system."""
        deadline = time.monotonic() + timeout
        while not self.leader:
            self.leader = self._init_pid()
            if self.process.poll() is not None:
                raise AssertionError(f"systemd-nspawn ended:\n{self.console_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the container's systemd did not start:\n{self.console_text()}"
                )
            time.sleep(0.1)
        state = ""
        while time.monotonic() < deadline:
            done = self.run(
                ["systemctl", "is-system-running", "--wait"],
                check=False,
                timeout=deadline - time.monotonic(),
            )
            state = done.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.2)
        failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"]).stdout
        assert state in ("running", "degraded"), f"the container booted {state!r}:\n{failed}"
        if failed:
            # Not the package's doing (it is not installed yet); its unit is checked itself.
            print(f"the container booted {state}; failed units:\n{failed}")

    def _init_pid(self) -> int:
        """The container's PID 1 as this machine sees it (a child of systemd-nspawn)."""
        pids = [self.process.pid]
        while pids:
            pid = pids.pop()
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            if comm == "systemd" and pid != self.process.pid:
                return pid
            pids.extend(int(child) for child in children)
        return 0

    def run(
        self,
        command: Sequence[str],
        *,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """``command`` inside the container (its files, processes and systemd)."""
        done = subprocess.run(
            [
                "nsenter",
                f"--target={self.leader}",
                "--mount",
                "--uts",
                "--ipc",
                "--pid",
                "--",
                "env",
                "-i",
                *(f"{k}={v}" for k, v in INSIDE_ENV.items()),
                *(f"{k}={v}" for k, v in os.environ.items() if k.lower().endswith("_proxy")),
                *command,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def out(self, *command: str) -> str:
        return self.run(command).stdout

    def http(self, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """A request to ``url`` on the container's network (from this machine's Python)."""
        script = (
            "import json, sys, urllib.error, urllib.request\n"
            "url, body = sys.argv[1], sys.argv[2]\n"
            "data = body.encode() if body else None\n"
            "request = urllib.request.Request(url, data=data, "
            "headers={'Content-Type': 'application/json'} if data else {})\n"
            "try:\n"
            "    with urllib.request.urlopen(request, timeout=10) as response:\n"
            "        print(response.status, response.read().decode())\n"
            "except urllib.error.HTTPError as error:\n"
            "    print(error.code, error.read().decode())\n"
        )
        done = subprocess.run(
            [
                "nsenter",
                f"--target={self.leader}",
                "--net",
                "--",
                sys.executable,
                "-c",
                script,
                url,
                json.dumps(body) if body is not None else "",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            return 0, done.stderr.strip().splitlines()[-1:]
        status, _, text = done.stdout.partition(" ")
        return int(status), json.loads(text)

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        text = self.out("systemctl", "show", unit, *(f"--property={p}" for p in properties))
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def state(self, unit: str) -> str:
        """``systemctl is-active``: active, activating, inactive, failed, ..."""
        return self.run(["systemctl", "is-active", unit], check=False).stdout.strip()

    def stat(self, path: str) -> str:
        """``owner:group mode`` of ``path``."""
        return self.out("stat", "-c", "%U:%G %a", path).strip()

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def apt(self, *args: str) -> str:
        """apt-get (this machine's network reaches Debian's archive); its output."""
        options = ["-o", "DPkg::Lock::Timeout=120"]
        # How this machine reaches the archive: its proxy, and a snapshot mirror's old dates.
        for name in ("Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Valid-Until"):
            value = _host_apt_setting(name)
            if value:
                options += ["-o", f"{name}={value}"]
        done = self.run(["apt-get", "-y", *options, *args], check=False, timeout=600)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"apt-get {' '.join(args)} failed:\n{output[-4000:]}"
        return output

    def console_text(self) -> str:
        return self.console.read_text(errors="replace").replace("\r", "")[-4000:]

    def close(self) -> None:
        """Power the container off; end systemd-nspawn (by its own PID) if it does not."""
        if self.process.poll() is None and self.leader:
            self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=30)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        if self.process.poll() is None:
            self.process.terminate()  # systemd-nspawn asks the container to power off
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class Installation:
    container: Container
    debs: Debs


@pytest.fixture(scope="module")
def debian(debs: Debs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """A fresh Debian 12 booted under systemd, the packages in its /srv."""
    tarball = _debian_root()
    folder = tmp_path_factory.mktemp("debian12")
    root = folder / "root"
    root.mkdir()
    started = time.monotonic()
    _run(
        [
            "tar",
            "-C",
            str(root),
            "--zstd",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "-xpf",
            str(tarball),
        ]
    )
    # The packages where apt (its unprivileged _apt user) can read them.
    packages = root / "srv" / "videobooth"
    packages.mkdir(mode=0o755)
    for deb in (debs.first, debs.second):
        shutil.copy(deb, packages / deb.name)
        (packages / deb.name).chmod(0o644)
    # apt's daily timers could take the package lock in the middle of the test (to find no
    # network in here).
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        (root / "etc/systemd/system" / timer).symlink_to("/dev/null")
    container = Container(root, folder / "console.log")
    try:
        container.boot()
        print(f"container booted in {time.monotonic() - started:.1f} s")
        yield Installation(container, debs)
    finally:
        container.close()
        print(f"container console (end):\n{container.console_text()}")
        shutil.rmtree(root, ignore_errors=True)


def _run(command: Sequence[str]) -> str:
    done = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")
    return done.stdout


def _wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def _in_deb(deb: Path) -> dict[str, str]:
    """Every path in ``deb`` with its mode and owner as ``tar -tv`` shows them."""
    listing = _run(["dpkg-deb", "-c", str(deb)])
    entries = {}
    for line in listing.splitlines():
        mode, owner, _size, _date, _time, path, *_ = line.split()
        entries[path.removeprefix(".")] = f"{mode} {owner}"
    return entries


# --- the tests ---------------------------------------------------------------------------------


def test_package_build_script_says_how_and_why_not() -> None:
    shown = subprocess.run([str(BUILD), "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0
    assert shown.stdout.startswith("Usage: packaging/build-deb --out DIR [options]")
    for option in ("--version", "--cache", "--work"):
        assert option in shown.stdout
    refused = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert refused.stderr == "packaging/build-deb: --out DIR is required (see --help)\n"
    wrong = subprocess.run(
        [str(BUILD), "--out", "/nonexistent", "--version", "next"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode == 1
    assert wrong.stderr.endswith(
        "'next' is not a Debian version (digits first; letters, digits, . + ~)\n"
    )


def test_package_contents(debs: Debs) -> None:
    """The server in /opt/videobooth, its command, unit, user and configuration file."""
    fields = {
        f: _run(["dpkg-deb", "-f", str(debs.first), f]).strip()
        for f in ("Package", "Version", "Depends")
    }
    assert fields["Package"] == "videobooth-server"
    # pyproject.toml's version and the commit: 0.1.0+142.gc45b451 (+dirty... for a changed tree).
    assert re.fullmatch(r"0\.1\.0\+\d+\.g[0-9a-f]{7}(\+dirty\d{14})?", fields["Version"]), fields
    assert Debs.version(debs.second) == fields["Version"] + "+upgrade"
    for dependency in ("python3.11", "systemd", "libc6"):
        assert dependency in fields["Depends"], fields["Depends"]
    entries = _in_deb(debs.first)
    for path in (
        "/opt/videobooth/bin/videobooth-server",
        "/opt/videobooth/bin/python3.11",
        "/usr/bin/videobooth-server",
        "/lib/systemd/system/videobooth.service",
        "/usr/lib/sysusers.d/videobooth-server.conf",
        "/usr/share/doc/videobooth-server/README.Debian",
    ):
        assert path in entries, path
    assert entries["/etc/videobooth/server.toml"] == "-rw-r----- root/root"
    # Only the server: the booth's and the technician's commands and packages stay out.
    assert not [p for p in entries if re.search(r"/bin/videobooth-(booth|provision|demo)$", p)]
    assert not [p for p in entries if "/site-packages/kiosk/" in p]
    control = _run(["dpkg-deb", "-I", str(debs.first), "conffiles"])
    assert control.split() == ["/etc/videobooth/server.toml"]
    # No trace of the folder it was built in.
    files = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(debs.first)], capture_output=True, check=True
    ).stdout
    assert b"videobooth-deb." not in files
    assert b"debian/videobooth-server/opt" not in files


def test_package_same_commit_same_bytes(debs: Debs, tmp_path: Path) -> None:
    """A third build of this tree with the first one's version is the same file, byte for byte
    (SOURCE_DATE_EPOCH from the commit; no build folder, time or order in it)."""
    again = _build(tmp_path, "--version", Debs.version(debs.first))
    assert again.name == debs.first.name
    digests = [hashlib.sha256(deb.read_bytes()).hexdigest() for deb in (debs.first, again)]
    assert digests[0] == digests[1], "the same commit built two different packages"


def test_package_installs_on_a_fresh_debian_and_serves(debian: Installation) -> None:
    c = debian.container
    c.apt("update")
    output = c.apt("install", f"/srv/videobooth/{debian.debs.first.name}")
    print(output[-3000:])
    assert "videobooth-server: bringing the database up to date" in output
    assert "database schema is up to date" in output

    # The user, its folders and the configuration.
    assert c.out("getent", "passwd", "videobooth").strip().split(":")[5:] == [
        "/var/lib/videobooth",
        "/usr/sbin/nologin",
    ]
    assert c.stat("/var/lib/videobooth") == "videobooth:videobooth 750"
    assert c.stat("/etc/videobooth/server.toml") == "root:videobooth 640"
    config = c.out("cat", "/etc/videobooth/server.toml")
    assert 'data_dir = "/var/lib/videobooth"' in config
    # migrate, as the videobooth user, made the database: the service's.
    assert c.stat("/var/lib/videobooth/videobooth.db").startswith("videobooth:videobooth ")

    c.run(["systemctl", "start", "videobooth"])
    assert c.state("videobooth") == "active"
    assert c.out("systemctl", "is-enabled", "videobooth").strip() == "enabled"
    assert c.http(HEALTH) == (200, {"status": "ok"})
    unit = c.show(
        "videobooth",
        "Type",
        "NotifyAccess",
        "StatusText",
        "WatchdogUSec",
        "User",
        "MainPID",
        "NoNewPrivileges",
        "ProtectSystem",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectHome",
    )
    assert unit["Type"] == "notify"
    assert unit["NotifyAccess"] == "main"
    # READY=1 came with this status: systemd took the start as done then.
    assert unit["StatusText"] == "listening on http://127.0.0.1:8080/"
    assert unit["WatchdogUSec"] == "30s"
    assert unit["User"] == "videobooth"
    for setting, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectHome", "yes"),
    ):
        assert unit[setting] == value, setting
    # The running server as the kernel sees it: no new privileges, no capabilities.
    status = c.out("cat", f"/proc/{unit['MainPID']}/status")
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.MULTILINE), status
    assert re.search(r"^CapEff:\s+0+$", status, re.MULTILINE), status
    assert re.search(r"^CapBnd:\s+0+$", status, re.MULTILINE), status
    # systemd's own rating of the sandbox (0 is locked down, 10 is open).
    security = c.run(["systemd-analyze", "security", "--no-pager", "videobooth"], check=False)
    exposure = re.search(
        r"Overall exposure level for videobooth.service: (\d+\.\d+)", security.stdout
    )
    assert exposure, security.stdout + security.stderr
    print(f"systemd-analyze security: {exposure.group(0)}")
    assert float(exposure.group(1)) <= 2.0, security.stdout[-3000:]
    assert c.stat("/var/lib/videobooth/server.key") == "videobooth:videobooth 600"


def test_package_service_feeds_its_watchdog_and_stops_cleanly(debian: Installation) -> None:
    c = debian.container
    first = c.show("videobooth", "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
    # Pings every 15 s (half of WatchdogSec=30s) move the timestamp of the last one.
    _wait_for(
        lambda: (
            c.show("videobooth", "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
            != first
        ),
        40,
        "a watchdog ping",
    )
    # A server that stops answering (here: stopped by a signal) is killed and started again.
    # Shorter times than the unit's (30 s, and 75 s before SIGKILL) for the test's sake.
    c.run(["mkdir", "-p", "/run/systemd/system/videobooth.service.d"])
    c.run(
        ["tee", "/run/systemd/system/videobooth.service.d/test.conf"],
        stdin="[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\n",
    )
    c.run(["systemctl", "daemon-reload"])
    c.run(["systemctl", "restart", "videobooth"])
    hung = c.show("videobooth", "MainPID")["MainPID"]
    c.run(["sh", "-c", f"kill -STOP {hung}"])
    _wait_for(
        lambda: (
            c.show("videobooth", "MainPID")["MainPID"] not in (hung, "0")
            and c.state("videobooth") == "active"
        ),
        30,
        "the watchdog to restart the server",
    )
    log = c.out("journalctl", "--no-pager", "-o", "cat", "-u", "videobooth")
    assert "videobooth.service: Watchdog timeout (limit 2s)!" in log, log[-3000:]
    assert c.http(HEALTH) == (200, {"status": "ok"})
    c.run(["rm", "-r", "/run/systemd/system/videobooth.service.d"])
    c.run(["systemctl", "daemon-reload"])
    c.run(["systemctl", "restart", "videobooth"])
    assert c.show("videobooth", "WatchdogUSec")["WatchdogUSec"] == "30s"

    started = time.monotonic()
    c.run(["systemctl", "stop", "videobooth"])
    took = time.monotonic() - started
    unit = c.show("videobooth", "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert unit == {
        "ActiveState": "inactive",
        "Result": "success",
        "ExecMainCode": "1",  # exited (not killed) ...
        "ExecMainStatus": "0",  # ... with 0
    }
    assert took < 15, f"systemctl stop took {took:.1f} s"
    log = c.out("journalctl", "--no-pager", "-o", "cat", "-u", "videobooth")
    assert "Database sqlite+aiosqlite:////var/lib/videobooth/videobooth.db closed" in log
    assert c.http(HEALTH)[0] == 0


def _login(c: Container, username: str) -> tuple[int, Any]:
    return c.http(LOGIN, {"username": username, "password": PASSWORD})


def test_package_upgrade_keeps_the_data_and_migrates(debian: Installation) -> None:
    c = debian.container
    c.run(["systemctl", "start", "videobooth"])
    # The account, made as an administrator would (as root; the command becomes videobooth).
    made = c.run(
        ["videobooth-server", "user", "add", "advisor1", "--role", "admin", "--password-stdin"],
        stdin=PASSWORD + "\n",
    )
    assert "created admin advisor1" in made.stdout
    assert _login(c, "advisor1")[0] == 200
    key = c.out("sha256sum", "/var/lib/videobooth/server.key")
    c.run(["sh", "-c", f"echo '{ADMIN_LINE}' >> /etc/videobooth/server.toml"])
    # The database one revision back, as a build from before the newest migration left it: the
    # upgrade's migrate has work to do.
    downgrade = (
        "from alembic import command\n"
        "from sqlalchemy import create_engine\n"
        "from server.storage.database import alembic_config\n"
        "engine = create_engine('sqlite:////var/lib/videobooth/videobooth.db')\n"
        "with engine.begin() as connection:\n"
        "    command.downgrade(alembic_config(connection), '-1')\n"
    )
    c.run(
        [
            "setpriv",
            "--reuid=videobooth",
            "--regid=videobooth",
            "--init-groups",
            "/opt/videobooth/bin/python",
            "-c",
            downgrade,
        ]
    )
    before = c.show("videobooth", "MainPID")["MainPID"]

    output = c.apt("install", f"/srv/videobooth/{debian.debs.second.name}")
    print(output[-3000:])
    version = c.out("dpkg-query", "-W", "-f=${Version}", "videobooth-server")
    assert version == Debs.version(debian.debs.second)
    # postinst migrated (as the videobooth user: the database stays the service's) ...
    assert re.search(r"Running upgrade \S+ -> \S+", output), output[-3000:]
    assert "database schema is up to date" in output
    assert c.stat("/var/lib/videobooth/videobooth.db").startswith("videobooth:videobooth ")
    # ... and the service runs again: the new build, a new process.
    assert c.state("videobooth") == "active"
    assert c.show("videobooth", "MainPID")["MainPID"] != before
    assert c.http(HEALTH) == (200, {"status": "ok"})
    status, me = _login(c, "advisor1")
    assert status == 200, me
    assert me["username"] == "advisor1"
    assert c.out("sha256sum", "/var/lib/videobooth/server.key") == key
    # The administrator's configuration stays, with its owner and mode, and no copy beside it.
    assert ADMIN_LINE in c.out("cat", "/etc/videobooth/server.toml")
    assert c.stat("/etc/videobooth/server.toml") == "root:videobooth 640"
    assert c.out("ls", "/etc/videobooth").split() == ["server.toml"]
    assert c.stat("/var/lib/videobooth") == "videobooth:videobooth 750"


def test_package_remove_keeps_the_data_and_purge_deletes_it(debian: Installation) -> None:
    c = debian.container
    c.apt("remove", "videobooth-server")
    assert c.state("videobooth") == "inactive"
    assert not c.exists("/lib/systemd/system/videobooth.service")
    assert c.exists("/var/lib/videobooth/videobooth.db")
    assert c.exists("/etc/videobooth/server.toml")

    output = c.apt("purge", "videobooth-server")
    assert (
        "videobooth-server: purge: deleting the server's data in /var/lib/videobooth "
        "(database, server key, branding)" in output
    ), output
    assert not c.exists("/var/lib/videobooth")
    assert not c.exists("/etc/videobooth")
    assert not c.exists("/opt/videobooth")
    # Debian keeps system users: files elsewhere (backups) may still be theirs.
    assert c.run(["getent", "passwd", "videobooth"], check=False).returncode == 0
