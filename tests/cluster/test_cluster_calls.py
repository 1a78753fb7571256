"""Calls across the nodes of a cluster, with signalling clients on chosen nodes: a booth on one
node appears at once in the queue of an advisor on another, who takes the call; offers,
answers, candidates and chat pass between them; two advisors on two nodes accepting the same
caller at the same moment, twenty times: exactly one gets it each time, the other is told.
A booth logs in with a challenge from one node at another (once).
A node killed mid-call (the booth's, then the advisor's): the survivors carry the call on, the
client whose node died resumes on another node, and the call goes on. NATS restarted while
booths wait on every node: nobody loses their place. Timings are shown in the run's output."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from datetime import timedelta

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.identity import public_key_hex
from protocol.boothauth import booth_auth_text
from server.storage import Database, add_booth_for_enrolment, create_branch, enrol_booth
from tests.cluster.conftest import METRICS_TOKEN
from tests.cluster.natsserver import NatsServer
from tests.cluster.nodes import Cluster, NodeProcess
from tests.cluster.peers import (
    Clients,
    clients,
    drain,
    offer,
    unique,
    until_in_queue,
    until_not_in_queue,
)
from tests.report import show
from tests.server.conftest import Peer
from tests.server.postgres import restart_postgres

pytestmark = pytest.mark.cluster


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    lines: list[str] = []
    yield lines
    show(request.config, [f"{request.node.name}: {line}" for line in lines])


async def _waiting_booth(c: Clients, url: str) -> tuple[Peer, str, str]:
    """A new booth connected at ``url`` asking for an advisor: it, its session and token."""
    booth = await c.booth(url, await c.booth_account())
    await booth.send(type="call_request")
    waiting = await booth.receive_type("call_waiting")
    return booth, waiting["session_id"], waiting["resume_token"]


async def _call(
    c: Clients, booth_url: str, advisor: Peer
) -> tuple[Peer, str, dict[str, object], dict[str, object]]:
    """A booth at ``booth_url`` in a call with ``advisor``: the booth, the session, and the
    call_started each of them got."""
    booth, session_id, _ = await _waiting_booth(c, booth_url)
    await until_in_queue(advisor, session_id)
    await advisor.send(type="call_accept", session_id=session_id)
    started_booth = await booth.receive_type("call_started")
    started_advisor = await advisor.receive_type("call_started")
    return booth, session_id, started_booth, started_advisor


async def _talk(booth: Peer, advisor: Peer, session_id: str, line: str) -> None:
    """An offer, an answer, a candidate and a chat line pass both ways."""
    await booth.send(**offer(session_id))
    got = await advisor.receive_type("offer")
    assert got["session_id"] == session_id
    await advisor.send(type="answer", session_id=session_id, sdp="v=0\r\n")
    assert (await booth.receive_type("answer"))["session_id"] == session_id
    await booth.send(
        type="ice_candidate",
        session_id=session_id,
        candidate="candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host",
        sdp_mid="0",
        sdp_mline_index=0,
    )
    assert (await advisor.receive_type("ice_candidate"))["session_id"] == session_id
    # A chat line goes to everyone in the call, its sender too (with its time and name).
    await advisor.send(type="chat", session_id=session_id, text=line)
    assert (await booth.receive_type("chat"))["text"] == line
    assert (await advisor.receive_type("chat"))["text"] == line
    await booth.send(type="chat", session_id=session_id, text=f"re: {line}")
    assert (await advisor.receive_type("chat"))["text"] == f"re: {line}"
    assert (await booth.receive_type("chat"))["text"] == f"re: {line}"


async def test_cluster_booth_on_one_node_advisor_on_another(
    cluster: Cluster, figures: list[str]
) -> None:
    node1, node2 = cluster.nodes[0], cluster.nodes[1]
    async with clients(cluster.database_url) as c:
        advisor = await c.new_advisor(node2.url)
        booth, session_id, _ = await _waiting_booth(c, node1.url)
        seen = await until_in_queue(advisor, session_id)
        figures.append(f"a booth waiting on node1 in the queue on node2 after {seen * 1000:.0f} ms")
        assert seen < 2.0
        started = time.monotonic()
        await advisor.send(type="call_accept", session_id=session_id)
        on_booth = await booth.receive_type("call_started")
        on_advisor = await advisor.receive_type("call_started")
        figures.append(f"accepted across nodes in {(time.monotonic() - started) * 1000:.0f} ms")
        assert on_booth["offerer"] is True and on_advisor["offerer"] is False
        await until_not_in_queue(advisor, session_id)
        await _talk(booth, advisor, session_id, "Guten Tag")
        await advisor.send(type="hangup", session_id=session_id, reason="completed")
        assert (await booth.receive_type("hangup"))["reason"] == "completed"
        # The advisor is free again, and can take the next caller from a third node.
        booth3, second, _ = await _waiting_booth(c, cluster.nodes[2].url)
        await until_in_queue(advisor, second)
        await advisor.send(type="call_accept", session_id=second)
        await booth3.receive_type("call_started")
        await advisor.receive_type("call_started")
        await booth3.send(type="hangup", session_id=second, reason="completed")
        assert (await advisor.receive_type("hangup"))["session_id"] == second


async def test_cluster_accept_race_has_exactly_one_winner(
    cluster: Cluster, figures: list[str]
) -> None:
    node1, node2, node3 = cluster.nodes
    async with clients(cluster.database_url) as c:
        advisors = [await c.new_advisor(node2.url), await c.new_advisor(node3.url)]
        before = _accepts(node2, node3)
        wins = [0, 0]
        for attempt in range(20):
            booth, session_id, _ = await _waiting_booth(c, node1.url)
            for advisor in advisors:
                await until_in_queue(advisor, session_id)
            await asyncio.gather(
                *(a.send(type="call_accept", session_id=session_id) for a in advisors)
            )
            answers = [await _accept_answer(a, session_id) for a in advisors]
            kinds = sorted(kind for kind, _ in answers)
            assert kinds == ["call_started", "error"], f"attempt {attempt}: {answers}"
            loser = next(m for kind, m in answers if kind == "error")
            assert loser["code"] == "session_not_waiting", loser
            winner = next(i for i, (kind, _) in enumerate(answers) if kind == "call_started")
            wins[winner] += 1
            assert (await booth.receive_type("call_started"))["session_id"] == session_id
            await booth.send(type="hangup", session_id=session_id, reason="completed")
            await advisors[winner].receive_type("hangup")
            await booth.close()
            for advisor in advisors:
                await drain(advisor)
        figures.append(f"20 accept races across nodes: won by node2 {wins[0]}, node3 {wins[1]}")
        # Each node counts its own accepts: twenty more won and twenty more lost in all.
        assert _accepts(node2, node3) == (before[0] + 20, before[1] + 20)


def _accepts(*nodes: NodeProcess) -> tuple[float, float]:
    """The accepts won and lost on ``nodes`` so far, from their ``/metrics``."""

    def total(outcome: str) -> float:
        name = f'videobooth_cluster_accepts_total{{outcome="{outcome}"}}'
        return sum(node.metric(METRICS_TOKEN, name) for node in nodes)

    return total("won"), total("lost")


async def _accept_answer(advisor: Peer, session_id: str) -> tuple[str, dict[str, object]]:
    while True:
        message = await advisor.receive(timeout=10)
        if message["type"] in ("call_started", "error"):
            return str(message["type"]), message
        advisor.queue.apply(message)


async def _resume(
    c: Clients, url: str, credential: str, session_id: str, token: str, timeout: float = 20
) -> tuple[Peer, dict[str, object], float]:
    """The booth connects again at ``url`` (retrying while nothing answers) and resumes;
    the connection, its ``resumed`` and the seconds that took."""
    started = time.monotonic()
    while True:
        try:
            booth = await c.booth(url, credential)
            break
        except (OSError, Exception):
            if time.monotonic() - started > timeout:
                raise
            await asyncio.sleep(0.2)
    await booth.send(type="resume", session_id=session_id, token=token)
    resumed = await booth.receive_type("resumed", timeout=timeout)
    return booth, resumed, time.monotonic() - started


async def test_cluster_kill_the_booths_node_mid_call(cluster: Cluster, figures: list[str]) -> None:
    node1, node2, _ = cluster.nodes
    async with clients(cluster.database_url) as c:
        advisor = await c.new_advisor(node2.url)
        credential = await c.booth_account()
        booth = await c.booth(node1.url, credential)
        await booth.send(type="call_request")
        session_id = (await booth.receive_type("call_waiting"))["session_id"]
        await until_in_queue(advisor, session_id)
        await advisor.send(type="call_accept", session_id=session_id)
        token = (await booth.receive_type("call_started"))["resume_token"]
        await advisor.receive_type("call_started")
        await _talk(booth, advisor, session_id, "before")
        killed = time.monotonic()
        cluster.kill(node1)
        away = await advisor.receive_type("participant_away", timeout=15)
        figures.append(
            "node1 killed: the advisor hears the booth away after "
            f"{time.monotonic() - killed:.1f} s"
        )
        assert away["session_id"] == session_id
        booth, resumed, took = await _resume(c, cluster.url, credential, session_id, token)
        figures.append(
            f"the booth resumed through HAProxy {took:.1f} s after reconnecting "
            f"({time.monotonic() - killed:.1f} s after the kill)"
        )
        assert resumed["active"] is True
        back = await advisor.receive_type("participant_back", timeout=10)
        assert back["session_id"] == session_id
        await _talk(booth, advisor, session_id, "after")
        await advisor.send(type="hangup", session_id=session_id, reason="completed")
        assert (await booth.receive_type("hangup"))["reason"] == "completed"


async def test_cluster_kill_the_advisors_node_mid_call(
    cluster: Cluster, figures: list[str]
) -> None:
    node1, node2, node3 = cluster.nodes
    async with clients(cluster.database_url) as c:
        # The advisor's login cookie comes along to the next node (one key, one database).
        advisor = await c.new_advisor(node2.url)
        booth, session_id, _ = await _waiting_booth(c, node1.url)
        await until_in_queue(advisor, session_id)
        await advisor.send(type="call_accept", session_id=session_id)
        await booth.receive_type("call_started")
        token = (await advisor.receive_type("call_started"))["resume_token"]
        await _talk(booth, advisor, session_id, "before")
        killed = time.monotonic()
        cluster.kill(node2)
        away = await booth.receive_type("participant_away", timeout=15)
        figures.append(
            "node2 killed: the booth hears the advisor away after "
            f"{time.monotonic() - killed:.1f} s"
        )
        assert away["session_id"] == session_id
        ws = await advisor.http.ws_connect(f"{node3.url}/api/v1/ws")
        again = Peer(advisor.http, ws)
        c.peers.append(again)
        await again.receive_type("welcome")
        await again.send(type="resume", session_id=session_id, token=token)
        resumed = await again.receive_type("resumed", timeout=15)
        figures.append(
            f"the advisor resumed on node3 {time.monotonic() - killed:.1f} s after the kill"
        )
        assert resumed["active"] is True
        await booth.receive_type("participant_back", timeout=10)
        await _talk(booth, again, session_id, "after")
        await booth.send(type="hangup", session_id=session_id, reason="completed")
        assert (await again.receive_type("hangup"))["reason"] == "completed"


async def test_cluster_nats_restarted_mid_queue_nobody_loses_their_place(
    cluster: Cluster, cluster_nats_server: NatsServer, figures: list[str]
) -> None:
    async with clients(cluster.database_url) as c:
        advisor = await c.new_advisor(cluster.nodes[1].url)
        waiting = []
        for node in (*cluster.nodes, *cluster.nodes):  # two on each node, in this order
            booth, session_id, _ = await _waiting_booth(c, node.url)
            await until_in_queue(advisor, session_id)
            waiting.append((booth, session_id))
        before = [w["session_id"] for w in advisor.queue.waiting]
        assert before[-6:] == [s for _, s in waiting]
        started = time.monotonic()
        cluster_nats_server.restart()
        # A booth asks while the bus is back but before anyone reloaded, on another node.
        late, late_id, _ = await _waiting_booth(c, cluster.nodes[2].url)
        await until_in_queue(advisor, late_id, timeout=15)
        figures.append(
            "NATS restarted: a new caller on node3 seen on node2 "
            f"{time.monotonic() - started:.1f} s later"
        )
        await drain(advisor)
        after = [w["session_id"] for w in advisor.queue.waiting]
        assert after[: len(before)] == before, (before, after)
        assert after[len(before) :] == [late_id]
        # Every booth still waits where it was: cancelling reaches its node and empties the
        # queue everywhere.
        for booth, session_id in [*waiting, (late, late_id)]:
            await booth.send(type="call_cancel", session_id=session_id)
        for _, session_id in [*waiting, (late, late_id)]:
            await until_not_in_queue(advisor, session_id)


async def test_cluster_booth_challenge_from_one_node_logs_in_at_another_once(
    cluster: Cluster,
) -> None:
    """A booth's challenge and its login reach different nodes (as through a load balancer):
    it logs in; the same signed header replayed at a third node is refused."""
    key = Ed25519PrivateKey.generate()
    db = await Database.open(cluster.database_url, migrate=False)
    try:
        branch = await create_branch(db, unique("Branch "), region="North")
        new = await add_booth_for_enrolment(
            db, unique("booth-"), branch_id=branch.id, ttl=timedelta(hours=1)
        )
        booth, _ = await enrol_booth(db, new.token, public_key_hex(key), {"machine": "test"})
    finally:
        await db.close()
    node1, node2, node3 = cluster.nodes
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{node1.url}/api/v1/booth/challenge?booth={booth.id}") as reply:
            nonce = (await reply.json())["nonce"]
        signature = base64.urlsafe_b64encode(key.sign(booth_auth_text(booth.id, nonce)))
        header = {
            "Authorization": f"Signature booth={booth.id},nonce={nonce},"
            f"signature={signature.decode().rstrip('=')}"
        }
        ws = await http.ws_connect(f"{node2.url}/api/v1/ws", headers=header)
        assert (await ws.receive_json(timeout=5))["type"] == "welcome"
        await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{node3.url}/api/v1/ws", headers=header)
        assert refused.value.status == 401


async def test_cluster_an_invitation_link_made_on_one_node_opens_on_another(
    cluster: Cluster,
) -> None:
    """The booth's call is carried by node1, its advisor is on node2 and makes an invitation
    link there; the interpreter opens it on node3, asks to join, is let in by the advisor,
    talks to the booth, and is removed: every step crosses nodes."""
    node1, node2, node3 = cluster.nodes
    async with clients(cluster.database_url) as c:
        advisor = await c.new_advisor(node2.url)
        booth, session_id, _, _ = await _call(c, node1.url, advisor)
        async with advisor.http.post(
            f"{node2.url}/api/v1/calls/{session_id}/invitations", json={"label": "Interpreter"}
        ) as reply:
            assert reply.status == 201, await reply.text()
            token = (await reply.json())["link"].rsplit("/", 1)[1]
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with http.post(f"{node3.url}/api/v1/join", json={"token": token}) as reply:
            assert reply.status == 200, await reply.text()
            assert (await reply.json())["kind"] == "invitation"
        guest = Peer(http, await http.ws_connect(f"{node3.url}/api/v1/ws"))
        c.peers.append(guest)
        guest_id = (await guest.receive_type("welcome"))["participant_id"]
        await guest.send(type="lobby_join")
        assert (await guest.receive_type("call_waiting"))["session_id"] == session_id
        waiting = await advisor.receive_type("participant_waiting")
        assert waiting["peer"]["participant_id"] == guest_id
        await advisor.send(type="admit", session_id=session_id, participant_id=guest_id)
        started = await guest.receive_type("call_started")
        assert [p["role"] for p in started["peers"]] == ["booth", "advisor"]
        assert (await booth.receive_type("participant_joined"))["peer"]["name"] == "Interpreter"
        await guest.send(type="chat", session_id=session_id, text="Merhaba")
        assert (await booth.receive_type("chat"))["text"] == "Merhaba"
        assert (await advisor.receive_type("chat"))["text"] == "Merhaba"
        await advisor.send(type="remove", session_id=session_id, participant_id=guest_id)
        assert (await guest.receive_type("hangup"))["reason"] == "removed"
        left = await booth.receive_type("participant_left")
        assert (left["participant_id"], left["reason"]) == (guest_id, "removed")
        # The link opens nothing once the call has ended, on any node.
        await booth.send(type="hangup", session_id=session_id, reason="completed")
        await advisor.receive_type("hangup")
        await asyncio.sleep(0.5)  # the owner's row and links go
        async with (
            aiohttp.ClientSession() as other,
            other.post(f"{node2.url}/api/v1/join", json={"token": token}) as reply,
        ):
            assert reply.status == 404, await reply.text()


async def test_cluster_nats_restarted_mid_call_the_call_goes_on(
    cluster: Cluster, cluster_nats_server: NatsServer, figures: list[str]
) -> None:
    """A call between a booth on node1 and an advisor on node2 while NATS restarts: no node
    takes another's calls over, and signalling passes again once the bus is back."""
    node1, node2, _ = cluster.nodes
    async with clients(cluster.database_url) as c:
        advisor = await c.new_advisor(node2.url)
        booth, session_id, _, _ = await _call(c, node1.url, advisor)
        await _talk(booth, advisor, session_id, "before")
        logged = {node.node_id: len(node.log.read_text()) for node in cluster.nodes}
        started = time.monotonic()
        cluster_nats_server.restart()
        # Chat sent right after the restart reaches the other side once the bus is back.
        await advisor.send(type="chat", session_id=session_id, text="still there?")
        assert (await booth.receive_type("chat", timeout=15))["text"] == "still there?"
        figures.append(
            f"NATS restarted mid-call: chat across nodes again after "
            f"{time.monotonic() - started:.1f} s"
        )
        await asyncio.sleep(4)  # longer than a node is given to be heard again
        await drain(advisor)
        await _talk(booth, advisor, session_id, "after")
        await booth.send(type="hangup", session_id=session_id, reason="completed")
        assert (await advisor.receive_type("hangup"))["reason"] == "completed"
    for node in cluster.nodes:  # nobody took anybody's calls over meanwhile
        since = node.log.read_text()[logged[node.node_id] :]
        assert "taking them over" not in since and "took over" not in since, since
        assert "letting go" not in since, since


async def test_cluster_postgresql_restarted_mid_call_the_call_goes_on(
    cluster: Cluster, figures: list[str]
) -> None:
    """PostgreSQL restarts (every connection cut) during a call across nodes: the call goes on, and
    the next caller is accepted across nodes (the claim needs the database) once it is back."""
    node1, node2, _ = cluster.nodes
    async with clients(cluster.database_url) as c:
        advisor = await c.new_advisor(node2.url)
        booth, session_id, _, _ = await _call(c, node1.url, advisor)
        next_booth = await c.booth(node1.url, await c.booth_account())
        started = time.monotonic()
        await asyncio.to_thread(restart_postgres, cluster.database_url)
        figures.append(f"PostgreSQL restarted in {time.monotonic() - started:.1f} s")
        await _talk(booth, advisor, session_id, "after the database came back")
        await booth.send(type="hangup", session_id=session_id, reason="completed")
        await advisor.receive_type("hangup")
        await next_booth.send(type="call_request")
        second = (await next_booth.receive_type("call_waiting"))["session_id"]
        await until_in_queue(advisor, second)
        await advisor.send(type="call_accept", session_id=second)
        assert (await next_booth.receive_type("call_started"))["session_id"] == second
        await advisor.receive_type("call_started")
        figures.append(
            "a call accepted across nodes "
            f"{time.monotonic() - started:.1f} s after the restart began"
        )
        await next_booth.send(type="hangup", session_id=second, reason="completed")
        await advisor.receive_type("hangup")
