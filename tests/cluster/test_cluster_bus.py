"""The bus: the same contract for the in-process bus and for NATS (a real nats-server), then
what only NATS has: tokens, outages, restarts and several nodes.

In the contract tests ``a`` publishes and ``b`` subscribes; for NATS they are two clients (two
nodes) of one server shared by the module, for the in-process bus they are the same bus.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from server.cluster import (
    MAX_PAYLOAD,
    BacklogFullError,
    BadSettingError,
    BadSubjectError,
    Bus,
    BusRefusedError,
    BusState,
    BusUnavailableError,
    LocalBus,
    Message,
    NatsBus,
    NoRespondersError,
    PayloadTooLargeError,
    RequestTimeoutError,
    StateChange,
    bus_for,
    call_subject,
    participant_subject,
    queue_subject,
)
from server.config import ClusterConfig, ServerConfig
from tests.cluster.natsserver import NatsServer, free_port, running_nats_server
from tests.pki import TestCA

#: Seconds a test waits for what it expects before failing.
WAIT = 10.0


class Inbox:
    """A handler that keeps what it gets, and a way to wait for it."""

    def __init__(
        self,
        answer: Callable[[Message], bytes | None] | None = None,
        *,
        changed: asyncio.Condition | None = None,
    ) -> None:
        self.messages: list[Message] = []
        self._answer = answer
        # Inboxes may share one condition, to wait for what they got together.
        self._changed = changed or asyncio.Condition()

    async def __call__(self, message: Message) -> bytes | None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()
        return self._answer(message) if self._answer else None

    @property
    def payloads(self) -> list[bytes]:
        return [message.payload for message in self.messages]

    async def wait_for(self, count: int) -> list[bytes]:
        """The payloads once there are at least ``count``."""
        await self.wait_until(lambda: len(self.messages) >= count)
        return self.payloads

    async def wait_until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(done)


class States:
    """A bus's state changes, and a way to wait for one."""

    def __init__(self, bus: Bus) -> None:
        self.changes: list[StateChange] = []
        self._changed = asyncio.Event()
        bus.on_state(self._record)

    def _record(self, change: StateChange) -> None:
        self.changes.append(change)
        self._changed.set()

    async def wait_for(self, wanted: Callable[[StateChange], bool], seconds: float = WAIT) -> None:
        async with asyncio.timeout(seconds):
            while not any(wanted(change) for change in self.changes):
                self._changed.clear()
                await self._changed.wait()


def nats_bus(server: NatsServer, name: str, **settings: object) -> NatsBus:
    options: dict[str, object] = {
        "token_file": server.token_file,
        "reconnect_wait": 1,
        "ping_interval": 1,
        "start_timeout": 5,
    }
    options.update(settings)
    return NatsBus(urls=[server.url], name=name, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server for the module's tests that do not stop it."""
    with running_nats_server(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def own_nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own, to stop, restart or freeze."""
    with running_nats_server(tmp_path) as server:
        yield server


@pytest.fixture(params=["local", "nats"])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Bus]]:
    """``(a, b)``: two nodes' buses on one NATS server, or one in-process bus twice."""
    if request.param == "local":
        local = LocalBus(name="node-a")
        await local.start()
        yield local, local
        await local.close()
        return
    server = request.getfixturevalue("nats_server")
    a, b = nats_bus(server, "node-a"), nats_bus(server, "node-b")
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


# The contract, for both buses.


async def test_cluster_bus_publish_subscribe(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    inbox = Inbox()
    await b.subscribe("vb.test.one", inbox)
    for payload in (b"first", b"second", b"third"):
        await a.publish("vb.test.one", payload)
    assert await inbox.wait_for(3) == [b"first", b"second", b"third"]
    assert inbox.messages[0] == Message("vb.test.one", b"first", None)


async def test_cluster_bus_a_subscription_gets_what_is_published_right_after(
    buses: tuple[Bus, Bus],
) -> None:
    # subscribe() returns once the subscription is in place: another node publishing the
    # next moment reaches it (with NATS: the server has the SUB before the PING answered).
    a, b = buses
    inboxes = [Inbox() for _ in range(100)]
    for number, inbox in enumerate(inboxes):
        await b.subscribe(f"vb.test.fresh.{number}", inbox)
        await a.publish(f"vb.test.fresh.{number}", b"%d" % number)
    for number, inbox in enumerate(inboxes):
        assert await inbox.wait_for(1) == [b"%d" % number]


async def test_cluster_bus_wildcards(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    one_call, every_call, everything, second_is_x = Inbox(), Inbox(), Inbox(), Inbox()
    await b.subscribe(call_subject("c1"), one_call)
    await b.subscribe("vb.call.*", every_call)
    await b.subscribe("vb.>", everything)
    await b.subscribe("vb.*.x", second_is_x)
    for subject in ("vb.call.c1", "vb.call.c2", "vb.call.c1.more", "vb.queue.x", "other.call.c1"):
        await a.publish(subject, subject.encode())
    # Each subscription gets its messages in order, so its last expected one closes the wait.
    assert await everything.wait_for(4) == [
        b"vb.call.c1",
        b"vb.call.c2",
        b"vb.call.c1.more",
        b"vb.queue.x",
    ]
    assert await second_is_x.wait_for(1) == [b"vb.queue.x"]
    assert await every_call.wait_for(2) == [b"vb.call.c1", b"vb.call.c2"]
    assert await one_call.wait_for(1) == [b"vb.call.c1"]
    # Nothing more came meanwhile: "vb.>" got the last message after the others' ones.
    assert len(one_call.messages) == 1
    assert len(every_call.messages) == 2


#: Patterns, the subjects published, and which of them match; the last always matches and
#: closes the wait (a subscription gets its messages in order).
MATCHING = [
    ("vb.*.x", ["vb.a.x", "vb.x", "vb.a.b.x", "vb.a.x.y", "vb.x.a", "vb.end.x"], [0, 5]),
    ("vb.>", ["vb", "vb.a", "other.vb.a", "vb.a.b.c", "vb.end"], [1, 3, 4]),
    ("*.a", ["a", "b.a", "b.a.a", "a.b", "end.a"], [1, 4]),
    ("vb.*.>", ["vb.a", "vb.a.b", "vb.a.b.c", "vb", "vb.end.x"], [1, 2, 4]),
    (">", ["a", "a.b.c", "_INBOX.x", "end"], [0, 1, 2, 3]),
    ("vb.a-b_c", ["vb.a-b_c", "vb.a-b", "vb.a-b_c.d", "vb.a-b_c"], [0, 3]),
]


async def test_cluster_bus_pattern_matching(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    for pattern, subjects, matching in MATCHING:
        inbox = Inbox()
        subscription = await b.subscribe(pattern, inbox)
        for subject in subjects:
            await a.publish(subject, subject.encode())
        expected = [subjects[index].encode() for index in matching]
        assert await inbox.wait_for(len(expected)) == expected, pattern
        await subscription.unsubscribe()


async def test_cluster_bus_queue_group_gives_each_message_to_one_member(
    buses: tuple[Bus, Bus],
) -> None:
    a, b = buses
    together = asyncio.Condition()
    members = [Inbox(changed=together) for _ in range(3)]
    await b.subscribe("vb.test.work", members[0], queue="workers")
    await b.subscribe("vb.test.work", members[1], queue="workers")
    await a.subscribe("vb.test.*", members[2], queue="workers")
    other_group, everyone = Inbox(), Inbox()
    await b.subscribe("vb.test.work", other_group, queue="auditors")
    await b.subscribe("vb.test.work", everyone)
    sent = [str(n).encode() for n in range(30)]
    for payload in sent:
        await a.publish("vb.test.work", payload)
    assert await everyone.wait_for(30) == sent
    assert await other_group.wait_for(30) == sent
    await members[0].wait_until(lambda: sum(len(member.messages) for member in members) >= 30)
    shared = sorted(p for member in members for p in member.payloads)
    assert shared == sorted(sent)  # each message once, none twice


async def test_cluster_bus_request_reply(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    await b.subscribe("vb.test.ask", Inbox(lambda m: b"re: " + m.payload))
    assert await a.request("vb.test.ask", b"hello", timeout=5) == b"re: hello"
    # Responders in a queue group: one of them answers each request.
    first, second = Inbox(lambda m: b"first"), Inbox(lambda m: b"second")
    await b.subscribe("vb.test.shared", first, queue="responders")
    await b.subscribe("vb.test.shared", second, queue="responders")
    answers = [await a.request("vb.test.shared", b"?", timeout=5) for _ in range(10)]
    assert set(answers) <= {b"first", b"second"}
    assert len(first.messages) + len(second.messages) == 10
    # The handlers saw requests: their messages have a reply subject.
    assert all(message.reply for message in first.messages + second.messages)


async def test_cluster_bus_request_timeout(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    silent = Inbox()  # gets the request, answers nothing
    await b.subscribe("vb.test.silent", silent)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError) as raised:
        await a.request("vb.test.silent", b"anyone?", timeout=0.3)
    assert time.monotonic() - started >= 0.3
    assert str(raised.value) == "bus node-a: no answer to a request on vb.test.silent within 0.3 s"
    assert isinstance(raised.value, TimeoutError)
    assert await silent.wait_for(1) == [b"anyone?"]


async def test_cluster_bus_request_no_responders(buses: tuple[Bus, Bus]) -> None:
    a, _ = buses
    started = time.monotonic()
    with pytest.raises(NoRespondersError) as raised:
        await a.request("vb.test.nobody", b"hello?", timeout=5)
    assert time.monotonic() - started < 2, "no responders is known at once, not after 5 s"
    assert str(raised.value) == "bus node-a: nobody answers requests on vb.test.nobody"


async def test_cluster_bus_unsubscribe(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    leaving, staying = Inbox(), Inbox()
    subscription = await b.subscribe("vb.test.leave", leaving)
    await b.subscribe("vb.test.leave", staying)
    await a.publish("vb.test.leave", b"before")
    assert await leaving.wait_for(1) == [b"before"]
    await subscription.unsubscribe()
    await subscription.unsubscribe()  # twice is fine
    assert not subscription.active
    await a.publish("vb.test.leave", b"after")
    assert await staying.wait_for(2) == [b"before", b"after"]
    assert leaving.payloads == [b"before"]


async def test_cluster_bus_unsubscribe_from_its_own_handler(buses: tuple[Bus, Bus]) -> None:
    a, b = buses
    got: list[bytes] = []
    done = asyncio.Event()

    async def once(message: Message) -> None:
        got.append(message.payload)
        await subscription.unsubscribe()
        await asyncio.sleep(0)  # the handler goes on after unsubscribing
        done.set()

    subscription = await b.subscribe("vb.test.once", once)
    witness = Inbox()
    await b.subscribe("vb.test.once", witness)
    for payload in (b"one", b"two", b"three"):
        await a.publish("vb.test.once", payload)
    await witness.wait_for(3)
    async with asyncio.timeout(WAIT):
        await done.wait()
    assert got == [b"one"]


async def test_cluster_bus_failing_handler_does_not_stop_delivery(
    buses: tuple[Bus, Bus], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = buses
    got = Inbox()

    async def fragile(message: Message) -> None:
        if message.payload == b"boom":
            raise RuntimeError("the handler broke")
        await got(message)

    await b.subscribe("vb.test.fragile", fragile)
    witness = Inbox()
    await b.subscribe("vb.test.fragile", witness)
    for payload in (b"one", b"boom", b"two"):
        await a.publish("vb.test.fragile", payload)
    await witness.wait_for(3)
    # The fragile subscription's own later message is the proof it goes on.
    assert await got.wait_for(2) == [b"one", b"two"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == [
        f"bus {b.name}: the handler of vb.test.fragile failed on a message on vb.test.fragile"
    ]
    assert failures[0].exc_info is not None
    assert str(failures[0].exc_info[1]) == "the handler broke"


async def test_cluster_bus_refuses_bad_subjects(buses: tuple[Bus, Bus]) -> None:
    a, _ = buses

    async def ignore(message: Message) -> None:
        return None

    with pytest.raises(BadSubjectError, match=r"^'vb\.\*' is not a subject: tokens of"):
        await a.publish("vb.*", b"")
    for pattern in ("vb..x", "vb.>.x", "vb.a b", "vb.x\r\nPUB", "", "vb.*x"):
        with pytest.raises(BadSubjectError, match="is not a subject pattern"):
            await a.subscribe(pattern, ignore)
    with pytest.raises(BadSubjectError, match="cannot name a queue group"):
        await a.subscribe("vb.x", ignore, queue="a.b")
    with pytest.raises(BadSubjectError, match=r"^'vb\.>' is not a subject"):
        await a.request("vb.>", b"", timeout=1)
    with pytest.raises(PayloadTooLargeError) as raised:
        await a.publish("vb.test.big", bytes(MAX_PAYLOAD + 1))
    assert str(raised.value) == (
        f"bus node-a: a message on vb.test.big has {MAX_PAYLOAD + 1} bytes, "
        f"more than the {MAX_PAYLOAD} a message may have"
    )


async def test_cluster_bus_state_start_and_close(request: pytest.FixtureRequest) -> None:
    for kind in ("local", "nats"):
        if kind == "local":
            bus: Bus = LocalBus(name="node-c")
            path = [BusState.CONNECTED, BusState.CLOSED]
        else:
            bus = nats_bus(request.getfixturevalue("nats_server"), "node-c")
            path = [BusState.CONNECTING, BusState.CONNECTED, BusState.CLOSED]
        states = States(bus)
        with pytest.raises(BusUnavailableError, match=r"^bus node-c is new: start it before use$"):
            await bus.publish("vb.test.x", b"")
        await bus.start()
        assert bus.state is BusState.CONNECTED
        await bus.subscribe("vb.test.x", Inbox())
        await bus.close()
        await bus.close()  # twice is fine
        assert [change.new for change in states.changes] == path, kind
        with pytest.raises(BusUnavailableError, match=r"^bus node-c is closed"):
            await bus.publish("vb.test.x", b"")
        with pytest.raises(BusUnavailableError, match=r"^bus node-c is closed: make a new one$"):
            await bus.start()


async def test_cluster_bus_local_never_runs_a_handler_inline() -> None:
    bus = LocalBus()
    await bus.start()
    inbox = Inbox()
    await bus.subscribe("vb.test.inline", inbox)
    await bus.publish("vb.test.inline", b"x")
    assert inbox.messages == []  # the publisher goes on first
    assert await inbox.wait_for(1) == [b"x"]
    await bus.close()


async def test_cluster_bus_local_slow_subscriber_loses_the_newest(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscription whose handler is stuck keeps its backlog and drops what comes after,
    logged at the first and every thousandth; NatsBus's subscriptions are the same class."""
    monkeypatch.setattr("server.cluster.bus.SUBSCRIPTION_BACKLOG", 10)
    bus = LocalBus()
    await bus.start()
    stuck_in_handler, going_on = asyncio.Event(), asyncio.Event()
    inbox = Inbox()

    async def stuck(message: Message) -> None:
        stuck_in_handler.set()
        await going_on.wait()
        await inbox(message)

    subscription = await bus.subscribe("vb.test.slow", stuck)
    sent = [str(n).encode() for n in range(2016)]
    await bus.publish("vb.test.slow", sent[0])
    await stuck_in_handler.wait()
    for payload in sent[1:]:
        await bus.publish("vb.test.slow", payload)
    # The first message is in the handler, ten wait: 2005 dropped.
    assert subscription.dropped == 2005
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"bus local: vb.test.slow is 10 messages behind, a message on vb.test.slow is "
        f"dropped ({n} so far)"
        for n in (1, 1001, 2001)
    ]
    going_on.set()
    assert await inbox.wait_for(11) == sent[:11]
    await bus.close()


def test_cluster_bus_subject_helpers() -> None:
    assert participant_subject("3f2a9c") == "vb.participant.3f2a9c"
    assert call_subject("c-1_2") == "vb.call.c-1_2"
    assert queue_subject("topic7") == "vb.queue.topic7"
    for bad in ("a.b", "*", ">", "", "x y", "ü"):
        with pytest.raises(BadSubjectError) as raised:
            participant_subject(bad)
        assert str(raised.value) == (
            f"{bad!r} cannot be part of a subject: use letters, digits, _ and -"
        )


def test_cluster_bus_for_configuration(tmp_path: Path) -> None:
    assert isinstance(bus_for(ServerConfig()), LocalBus)
    cluster = ClusterConfig(
        node_id="node-2",
        nats_urls=("nats://10.0.1.5:4222", "tls://nats.example:4222"),
        nats_token_file=tmp_path / "token",
        nats_ca_file=tmp_path / "ca.pem",
    )
    bus = bus_for(ServerConfig(database_url="postgresql+asyncpg://db/vb", cluster=cluster))
    assert isinstance(bus, NatsBus)
    assert (bus.name, bus.urls) == ("node-2", cluster.nats_urls)
    assert (bus.token_file, bus.ca_file) == (tmp_path / "token", tmp_path / "ca.pem")
    assert bus.state is BusState.NEW  # started by the app, not here


# NATS only.


async def test_cluster_bus_nats_two_nodes_see_each_other(nats_server: NatsServer) -> None:
    a, b = nats_bus(nats_server, "node-a"), nats_bus(nats_server, "node-b")
    await a.start()
    await b.start()
    at_a, at_b = Inbox(), Inbox()
    await a.subscribe(queue_subject("q1"), at_a)
    await b.subscribe(queue_subject("q1"), at_b)
    await a.publish("vb.queue.q1", b"from a")
    assert await at_b.wait_for(1) == [b"from a"]
    await b.publish("vb.queue.q1", b"from b")
    assert await at_a.wait_for(2) == [b"from a", b"from b"]
    assert await at_b.wait_for(2) == [b"from a", b"from b"]
    await a.close()
    await b.close()


async def test_cluster_bus_nats_wrong_token_is_refused(
    nats_server: NatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = tmp_path / "token"
    wrong.write_text("not-the-token-at-all\n")
    bus = nats_bus(nats_server, "node-x", token_file=wrong, start_timeout=10)
    started = time.monotonic()
    with pytest.raises(BusRefusedError) as raised:
        await bus.start()
    assert time.monotonic() - started < 5, "a refusal ends the start at once"
    assert str(raised.value) == (
        f"bus node-x: NATS at {nats_server.url} refused this node: the token was not accepted "
        "(check cluster.nats_token_file)"
    )
    assert bus.state is BusState.CLOSED
    # Neither the wrong token nor the right one is ever logged.
    assert "not-the-token-at-all" not in caplog.text
    assert nats_server.token not in caplog.text


async def test_cluster_bus_nats_token_never_logged(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bus = nats_bus(nats_server, "node-a")
    await bus.start()
    await bus.publish("vb.test.x", b"")
    await bus.close()
    assert "bus node-a: connecting -> connected" in caplog.text
    assert nats_server.token not in caplog.text


async def test_cluster_bus_nats_token_file_problems(tmp_path: Path) -> None:
    missing = NatsBus(urls=["nats://127.0.0.1:1"], name="n", token_file=tmp_path / "none")
    with pytest.raises(BadSettingError, match=r"^cluster.nats_token_file .*none cannot be read"):
        await missing.start()
    (tmp_path / "empty").write_text("\n")
    empty = NatsBus(urls=["nats://127.0.0.1:1"], name="n", token_file=tmp_path / "empty")
    with pytest.raises(BadSettingError, match=r"^cluster.nats_token_file .*empty is empty$"):
        await empty.start()
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    bad_ca = NatsBus(urls=["tls://127.0.0.1:1"], name="n", ca_file=tmp_path / "ca.pem")
    with pytest.raises(BadSettingError, match=r"^cluster.nats_ca_file .*ca.pem is not a usable"):
        await bad_ca.start()


async def test_cluster_bus_nats_over_tls(tmp_path: Path) -> None:
    """tls:// is checked against cluster.nats_ca_file; a server signed by another CA is
    refused at start."""
    ca = TestCA(tmp_path / "ca")
    issued = ca.issue("nats.test", addresses=("127.0.0.1",))
    (tmp_path / "nats").mkdir()
    with running_nats_server(tmp_path / "nats", tls=issued) as server:
        assert server.url.startswith("tls://")
        bus = nats_bus(server, "node-a", ca_file=ca.path)
        await bus.start()
        inbox = Inbox()
        await bus.subscribe("vb.test.tls", inbox)
        await bus.publish("vb.test.tls", b"sealed")
        assert await inbox.wait_for(1) == [b"sealed"]
        await bus.close()

        stranger = nats_bus(server, "node-x", ca_file=TestCA(tmp_path / "other").path)
        with pytest.raises(BusRefusedError) as raised:
            await stranger.start()
        message = str(raised.value)
        assert message.startswith(
            f"bus node-x: NATS at {server.url} refused this node: the TLS handshake failed: "
        ), message
        assert "certificate verify failed" in message
        assert message.endswith(" (check cluster.nats_ca_file)")


async def test_cluster_bus_nats_no_server_at_start() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    bus = NatsBus(urls=[url], name="node-x", start_timeout=1.5, reconnect_wait=1)
    with pytest.raises(BusUnavailableError) as raised:
        await bus.start()
    assert re.fullmatch(
        rf"bus node-x: no NATS server answered within 1\.5 s at {re.escape(url)} \(last: .+\)",
        str(raised.value),
    ), str(raised.value)
    assert bus.state is BusState.CLOSED


async def test_cluster_bus_nats_start_cancelled_leaves_nothing_behind() -> None:
    bus = NatsBus(urls=[f"nats://127.0.0.1:{free_port()}"], name="node-x", start_timeout=30)
    starting = asyncio.create_task(bus.start())
    await asyncio.sleep(0.2)  # connecting, and failing, again and again
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert bus.state is BusState.CLOSED
    left = [t.get_name() for t in asyncio.all_tasks() if "node-x" in t.get_name()]
    assert left == []


async def test_cluster_bus_nats_keeps_receiving_after_a_restart(
    own_nats_server: NatsServer,
) -> None:
    """After nats-server restarts, both nodes are back on their own (state ``disconnected ->
    connected``) with their subscriptions. What a node published during the outage waited
    in its pending buffer and was sent once it was back: its own subscriptions get it (they
    are made again before the buffer is sent); another node only if it was back first, so
    that is not counted on here. Messages published after the restart reach everyone."""
    server = own_nats_server
    a, b = nats_bus(server, "node-a"), nats_bus(server, "node-b")
    states_a, states_b = States(a), States(b)
    await a.start()
    await b.start()
    at_a, at_b = Inbox(), Inbox()
    await a.subscribe("vb.test.restart", at_a)
    await b.subscribe("vb.test.restart", at_b)

    server.stop()
    await states_a.wait_for(lambda change: change.new is BusState.DISCONNECTED)
    await states_b.wait_for(lambda change: change.new is BusState.DISCONNECTED)
    for payload in (b"during 1", b"during 2", b"during 3"):
        await a.publish("vb.test.restart", payload)  # kept in a's pending buffer
    server.start()
    await states_a.wait_for(lambda change: change.reconnected)
    await states_b.wait_for(lambda change: change.reconnected)

    assert await at_a.wait_for(3) == [b"during 1", b"during 2", b"during 3"]
    await b.publish("vb.test.restart", b"after, from b")
    assert (await at_a.wait_for(4))[3] == b"after, from b"
    await a.publish("vb.test.restart", b"after, from a")
    await at_b.wait_until(lambda: b"after, from a" in at_b.payloads)
    assert at_b.payloads[-2:] == [b"after, from b", b"after, from a"]
    assert [c.new for c in states_a.changes] == [
        BusState.CONNECTING,
        BusState.CONNECTED,
        BusState.DISCONNECTED,
        BusState.CONNECTED,
    ]
    await a.close()
    await b.close()


async def test_cluster_bus_nats_outage_beyond_the_pending_buffer(
    own_nats_server: NatsServer,
) -> None:
    """While disconnected a node keeps at most ``pending_bytes`` of messages; the next one is
    refused with BacklogFullError (the caller knows it is lost); the kept ones go out on
    reconnecting."""
    server = own_nats_server
    bus = nats_bus(server, "node-a", pending_bytes=1000)
    states = States(bus)
    await bus.start()
    inbox = Inbox()
    await bus.subscribe("vb.test.backlog", inbox)
    server.stop()
    await states.wait_for(lambda change: change.new is BusState.DISCONNECTED)
    kept: list[bytes] = []
    for n in range(100):
        payload = f"{n:03}".encode() * 33  # 99 bytes
        try:
            await bus.publish("vb.test.backlog", payload)
        except BacklogFullError as exc:
            refused = exc
            break
        kept.append(payload)
    else:
        pytest.fail("9900 bytes published while disconnected, none refused")
    assert 5 <= len(kept) < 10
    assert str(refused) == (
        "bus node-a: disconnected, and its pending buffer (1000 bytes) is full: a message on "
        "vb.test.backlog is dropped"
    )
    server.start()
    await states.wait_for(lambda change: change.reconnected)
    assert await inbox.wait_for(len(kept)) == kept
    await bus.publish("vb.test.backlog", b"after")
    assert (await inbox.wait_for(len(kept) + 1))[-1] == b"after"
    await bus.close()


async def test_cluster_bus_nats_subscribing_during_an_outage(
    own_nats_server: NatsServer,
) -> None:
    """A subscription made while disconnected is in force once the node is back, once."""
    server = own_nats_server
    a, b = nats_bus(server, "node-a"), nats_bus(server, "node-b")
    states_a, states_b = States(a), States(b)
    await a.start()
    await b.start()
    server.stop()
    await states_b.wait_for(lambda change: change.new is BusState.DISCONNECTED)
    inbox = Inbox(lambda message: b"here")
    subscription = await b.subscribe("vb.test.later", inbox)
    server.start()
    await states_a.wait_for(lambda change: change.reconnected)
    await states_b.wait_for(lambda change: change.reconnected)
    # Answered: the server has b's subscription.
    assert await a.request("vb.test.later", b"", timeout=5) == b"here"
    for payload in (b"one", b"two"):
        await a.publish("vb.test.later", payload)
    witness = Inbox()
    await a.subscribe("vb.test.later", witness)
    await a.publish("vb.test.later", b"three")
    await witness.wait_for(1)
    assert await inbox.wait_for(4) == [b"", b"one", b"two", b"three"]
    await subscription.unsubscribe()
    await a.close()
    await b.close()
    assert len(inbox.messages) == 4, "no message twice"


async def test_cluster_bus_nats_close_while_disconnected(own_nats_server: NatsServer) -> None:
    """Closing during an outage ends at once; what waited in the pending buffer is lost."""
    bus = nats_bus(own_nats_server, "node-a")
    states = States(bus)
    await bus.start()
    await bus.subscribe("vb.test.closing", Inbox())
    own_nats_server.stop()
    await states.wait_for(lambda change: change.new is BusState.DISCONNECTED)
    await bus.publish("vb.test.closing", b"never sent")
    started = time.monotonic()
    await bus.close()
    assert time.monotonic() - started < 3
    assert bus.state is BusState.CLOSED
    assert [c.new for c in states.changes][-2:] == [BusState.DISCONNECTED, BusState.CLOSED]


async def test_cluster_bus_nats_frozen_server(own_nats_server: NatsServer) -> None:
    """A server that hangs (SIGSTOP) keeps the connection open: missed pings (every second
    here) tell the bus it is gone; once the server goes on, the bus is back."""
    server = own_nats_server
    bus = nats_bus(server, "node-a", ping_interval=1)
    states = States(bus)
    await bus.start()
    try:
        inbox = Inbox()
        await bus.subscribe("vb.test.frozen", inbox)
        server.freeze()
        try:
            # Two pings unanswered: about 3 s on a quiet machine; a busy one (the whole suite
            # on two cores) has taken more than 8.
            await states.wait_for(lambda change: change.new is BusState.DISCONNECTED, seconds=20)
        finally:
            server.thaw()
        await states.wait_for(lambda change: change.reconnected, seconds=15)
        await bus.publish("vb.test.frozen", b"back")
        assert await inbox.wait_for(1) == [b"back"]
    finally:  # also when a wait failed: no connection left for a later test to find
        await bus.close()
