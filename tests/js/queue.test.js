// server/static/js/queue.js: the whole queue once, then changes applied to it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { applyQueueChange } from "../../server/static/js/queue.js";

const call = (id, since) => ({ session_id: id, caller_name: `Caller ${id}`, waiting_since: since });
const ids = (waiting) => waiting.map((w) => w.session_id);

describe("applyQueueChange", () => {
  const start = [call("a", "2026-12-05T09:00:00Z"), call("b", "2026-12-05T09:01:00Z")];

  it("adds new calls after the others, in the order given, and drops the ones that left", () => {
    const after = applyQueueChange(start, {
      upsert: [call("c", "2026-12-05T09:02:00Z"), call("d", "2026-12-05T09:02:00Z")],
      remove: ["a"],
    });
    assert.deepEqual(ids(after), ["b", "c", "d"]);
    assert.deepEqual(ids(start), ["a", "b"]); // the list given is left as it was
  });

  it("replaces a call that changed instead of listing it twice", () => {
    const renamed = { ...call("b", "2026-12-05T09:01:00Z"), caller_name: "Booth 7" };
    const after = applyQueueChange(start, { upsert: [renamed], remove: [] });
    assert.deepEqual(ids(after), ["a", "b"]);
    assert.equal(after[1].caller_name, "Booth 7");
  });

  it("changes nothing when applied twice, and ignores ids it does not know", () => {
    const change = { upsert: [call("c", "2026-12-05T09:02:00Z")], remove: ["a", "zzz"] };
    const once = applyQueueChange(start, change);
    assert.deepEqual(applyQueueChange(once, change), once);
    assert.deepEqual(ids(once), ["b", "c"]);
  });

  it("takes a change without one of its lists", () => {
    assert.deepEqual(ids(applyQueueChange(start, { remove: ["b"] })), ["a"]);
    assert.deepEqual(ids(applyQueueChange([], { upsert: [call("x", "2026-12-05T10:00:00Z")] })), ["x"]);
  });
});
