"""Which bus the server uses: in-process for one process, NATS with a [cluster] section."""

from __future__ import annotations

import logging

from server.cluster.bus import Bus
from server.cluster.local import LocalBus
from server.cluster.natsbus import NatsBus
from server.config import ServerConfig

log = logging.getLogger(__name__)


def bus_for(config: ServerConfig) -> Bus:
    """The bus ``config`` asks for, not yet started; the choice is logged."""
    cluster = config.cluster
    if cluster is None:
        log.info("bus: in-process (one server process: no [cluster] section)")
        return LocalBus()
    bus = NatsBus(
        urls=cluster.nats_urls,
        name=cluster.node_id,
        token_file=cluster.nats_token_file,
        ca_file=cluster.nats_ca_file,
    )
    log.info("bus: NATS at %s as node %s", bus, cluster.node_id)
    return bus
