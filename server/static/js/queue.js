// An advisor's queue: the server sends the whole list once ("queue"), then only what changed
// ("queue_changed": calls that joined or changed, calls that left). Applying a change twice
// changes nothing; an id the page does not know is ignored.

// The waiting calls after `change`, oldest first: the list's order, then each new call after
// them (a change lists the calls that joined in the order they came; a call that changed keeps
// its place).
export function applyQueueChange(waiting, change) {
  const calls = new Map(waiting.map((call) => [call.session_id, call]));
  for (const call of change.upsert ?? []) calls.set(call.session_id, call);
  for (const sessionId of change.remove ?? []) calls.delete(sessionId);
  return [...calls.values()];
}
