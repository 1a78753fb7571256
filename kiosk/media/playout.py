"""The playout-delay RTP header extension: how long the advisor's browser may hold the booth's
video before it shows it.

A browser's jitter buffer holds each received frame for as long as it estimates the stream
arrives irregularly. On a two-way call on one busy machine, Chromium held the booth's frames
25 ms on average (its target 33 ms) where a one-way stream of the same packets waited 5 ms,
and the booth's p99 glass-to-glass was 76 ms (bench/to_advisor.py). The extension
(``http://www.webrtc.org/experiments/rtp-hdrext/playout-delay``, negotiated in the SDP, one
element of three bytes: the least and the most delay in units of 10 ms, 12 bits each) lets the
sender bound that: with both 0 Chromium shows each frame as soon as it is decoded; measured on
the same machine in three runs: 0.1-0.2 ms in the buffer, p99 21-42 ms, 30 frames a second.
The price is on a network that delivers irregularly: frames are shown as irregularly as they
come (a booth on a poor branch line can allow some buffering, ``[video]
max_playout_delay_ms``; no such line was measured). A browser that does
not know the extension leaves it out of its answer, and nothing is sent.

The booth offers it in each video section of its offers (:func:`offer_playout_delay`); the
answer says under which id (:func:`answered_playout_delay`); the packet sender puts the element
(:func:`playout_delay_element`) into every packet of the frames it sends.
"""

from __future__ import annotations

PLAYOUT_DELAY_URI = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
#: One-byte header extension ids (RFC 8285): 1 to 14.
_IDS = range(1, 15)
#: The extension's unit, and its largest value (12 bits).
UNIT_MS = 10
MAX_MS = 0xFFF * UNIT_MS


def _sections(sdp: str) -> list[list[str]]:
    """``sdp``'s lines: the session part, then one list per media section."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _extmap_id(line: str) -> int | None:
    """The id an ``a=extmap:<id>[/<direction>] <uri>`` line gives; None for other lines."""
    if not line.startswith("a=extmap:"):
        return None
    try:
        return int(line[len("a=extmap:") :].split()[0].split("/")[0])
    except (ValueError, IndexError):
        return None


def offer_playout_delay(sdp: str) -> str:
    """``sdp`` (an offer) with the extension in each video section, under an id no section
    uses yet; unchanged where it is there already, or when every id is taken."""
    sections = _sections(sdp)
    # Bundled sections share one id space: an id means one extension in all of them.
    used = {_extmap_id(line) for section in sections for line in section}
    free = [i for i in _IDS if i not in used]
    if not free:
        return sdp
    for section in sections[1:]:
        if not section[0].startswith("m=video") or any(PLAYOUT_DELAY_URI in s for s in section):
            continue
        extmaps = [i for i, s in enumerate(section) if s.startswith("a=extmap:")]
        at = extmaps[-1] + 1 if extmaps else len(section)
        section.insert(at, f"a=extmap:{free[0]} {PLAYOUT_DELAY_URI}")
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


def answered_playout_delay(sdp: str) -> int | None:
    """The id under which ``sdp`` (an answer) takes the extension in its first video section,
    or None when it does not."""
    for section in _sections(sdp)[1:]:
        if not section[0].startswith("m=video"):
            continue
        for line in section:
            if line.startswith("a=extmap:") and line.split()[-1] == PLAYOUT_DELAY_URI:
                ext_id = _extmap_id(line)
                return ext_id if ext_id in _IDS else None
        return None
    return None


def playout_delay_element(ext_id: int, max_ms: int, min_ms: int = 0) -> bytes:
    """The extension as one element of a one-byte-header extension block: the id and length
    byte, then the least and the most delay (10 ms units, 12 bits each)."""
    if ext_id not in _IDS:
        raise ValueError(f"a one-byte header extension id is 1 to 14, not {ext_id}")
    if not 0 <= min_ms <= max_ms <= MAX_MS:
        raise ValueError(f"need 0 <= least <= most <= {MAX_MS} ms, not {min_ms} and {max_ms}")
    value = (min_ms // UNIT_MS) << 12 | (max_ms // UNIT_MS)
    return bytes([ext_id << 4 | 2]) + value.to_bytes(3, "big")
