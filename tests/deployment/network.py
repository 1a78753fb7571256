"""An agency's networks on one machine: network namespaces joined by a router namespace.

Each network (data centre, DMZ, branch, office, internet) is a namespace with one veth link to
the router, an address in a test range and a default route; the router forwards between them.
Addresses exist only inside the namespaces, so nothing here reaches the machine's own networks.
Needs root and iproute2; :meth:`Networks.close` removes everything it made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Network:
    name: str
    #: The first three octets of its /24; the router is .1.
    prefix: str
    #: The hosts' last octets in this network (one namespace holds them all).
    hosts: tuple[int, ...]

    def address(self, host: int | None = None) -> str:
        return f"{self.prefix}.{host if host is not None else self.hosts[0]}"


def run(command: Sequence[str], *, stdin: str | None = None) -> str:
    """Run ``command``; its output, or an AssertionError with its error output."""
    done = subprocess.run(list(command), input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")
    return done.stdout


@dataclass
class Networks:
    """The namespaces ``<tag>-<network>`` and ``<tag>-rtr``."""

    tag: str
    networks: dict[str, Network]
    made: list[str] = field(default_factory=list)
    etc: list[Path] = field(default_factory=list)

    @classmethod
    def make(cls, networks: Sequence[Network]) -> Networks:
        made = cls(tag=f"vb{os.getpid() % 100_000}", networks={n.name: n for n in networks})
        try:
            made._build()
        except BaseException:
            made.close()
            raise
        return made

    def namespace(self, network: str) -> str:
        return f"{self.tag}-{network}"

    def exec(self, network: str) -> list[str]:
        """The command prefix that runs a program in ``network``."""
        return ["ip", "netns", "exec", self.namespace(network)]

    def _build(self) -> None:
        router = f"{self.tag}-rtr"
        run(["ip", "netns", "add", router])
        self.made.append(router)
        run(["ip", "-n", router, "link", "set", "lo", "up"])
        run(["ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for index, network in enumerate(self.networks.values()):
            space = self.namespace(network.name)
            run(["ip", "netns", "add", space])
            self.made.append(space)
            outer, inner = f"{self.tag}r{index}", f"{self.tag}h{index}"
            run(["ip", "link", "add", outer, "type", "veth", "peer", "name", inner])
            run(["ip", "link", "set", outer, "netns", router])
            run(["ip", "link", "set", inner, "netns", space])
            run(["ip", "-n", router, "addr", "add", f"{network.prefix}.1/24", "dev", outer])
            run(["ip", "-n", router, "link", "set", outer, "up"])
            for host in network.hosts:
                address = f"{network.address(host)}/24"
                run(["ip", "-n", space, "addr", "add", address, "dev", inner])
            run(["ip", "-n", space, "link", "set", inner, "up"])
            run(["ip", "-n", space, "link", "set", "lo", "up"])
            run(["ip", "-n", space, "route", "add", "default", "via", f"{network.prefix}.1"])

    def hosts_file(self, network: str, names: dict[str, str]) -> None:
        """``/etc/hosts`` as programs in ``network`` see it (``ip netns exec`` puts
        ``/etc/netns/<namespace>/hosts`` over it)."""
        folder = Path("/etc/netns") / self.namespace(network)
        folder.mkdir(parents=True, exist_ok=True)
        self.etc.append(folder)
        lines = ["127.0.0.1 localhost", *(f"{ip} {name}" for name, ip in names.items())]
        (folder / "hosts").write_text("\n".join(lines) + "\n")

    def firewall(self, network: str, ruleset: str) -> None:
        """Load an nftables ``ruleset`` in ``network`` (gone with the namespace)."""
        run([*self.exec(network), "nft", "-f", "-"], stdin=ruleset)

    def close(self) -> None:
        for folder in self.etc:
            shutil.rmtree(folder, ignore_errors=True)
        for space in reversed(self.made):
            subprocess.run(["ip", "netns", "del", space], capture_output=True, check=False)
        self.made.clear()
