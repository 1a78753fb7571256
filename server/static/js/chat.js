// A call's text chat on the advisor's and the citizen's pages: the form that sends a line and
// the log that shows each line with who wrote it. The text is someone else's: it goes into the
// page as textContent, never as HTML.
//
//   wireChat($("chat-form"), $("chat-input"), (text) => session ? (queue(text), true) : false);
//   showChatMessage($("chat-log"), message, { mine: message.sender === me });

import { element } from "./dom.js";
import { t } from "./i18n.js";

/** On submit, `onText(text)` with the trimmed line (not when empty); the field is emptied when
 * it answers true (taken: sent, or queued until the connection is back). */
export function wireChat(form, input, onText) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text && onText(text)) input.value = "";
  });
}

/** Add a chat message ({sender_name, text}) to `log`: "you" for one's own; the line scrolled
 * into view. */
export function showChatMessage(log, message, { mine = false } = {}) {
  const item = element("li");
  item.append(
    element("span", { text: mine ? t("chat.you") : message.sender_name, className: "who" }),
    element("span", { text: message.text, className: "text" }),
  );
  log.append(item);
  item.scrollIntoView({ block: "nearest" });
  return item;
}
