// server/static/js/chat.js: a line goes in as text, never as markup; the form sends what was typed.
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";

import { showChatMessage, wireChat } from "../../server/static/js/chat.js";
import { FakeDocument } from "./fakes.js";

let page; // the page's document, as the modules find it
beforeEach(() => {
  page = new FakeDocument();
  globalThis.document = page;
});

describe("showChatMessage", () => {
  it("shows who wrote what, and scrolls the line into view", () => {
    const log = page.add("ol", "chat-log");
    const item = showChatMessage(log, { sender: "p-1", sender_name: "Ada", text: "Hello" });
    assert.equal(log.children.length, 1);
    assert.equal(item.outerHTML, '<li><span class="who">Ada</span><span class="text">Hello</span></li>');
    assert.equal(item.scrolledIntoView, 1);
  });

  it("puts markup in the text as text: nothing of it becomes an element", () => {
    const log = page.add("ol", "chat-log");
    const text = '<img src=x onerror="alert(1)">&amp; </span><script>alert(2)</script>';
    const item = showChatMessage(log, { sender_name: "<b>Eve</b>", text });
    const [who, line] = item.children;
    assert.equal(who.textContent, "<b>Eve</b>");
    assert.equal(line.textContent, text);
    assert.deepEqual([who, line].map((span) => span.children.length), [0, 0]);
    assert.ok(item.outerHTML.includes("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp; &lt;/span&gt;&lt;script&gt;"));
    assert.ok(!item.outerHTML.includes("<img"));
  });

  it("names one's own line as one's own", () => {
    const log = page.add("ol", "chat-log");
    const item = showChatMessage(log, { sender: "p-me", sender_name: "Ada", text: "hi" }, { mine: true });
    assert.equal(item.children[0].textContent, "chat.you"); // the key: no catalogue loaded here
  });
});

describe("wireChat", () => {
  function chat(answer = true) {
    const form = page.add("form", "chat-form");
    const input = page.add("input", "chat-input");
    const taken = [];
    wireChat(form, input, (text) => {
      taken.push(text);
      return answer;
    });
    return { form, input, taken };
  }

  it("hands on the trimmed line and empties the field", () => {
    const { form, input, taken } = chat();
    input.value = "  Good morning  ";
    const event = form.dispatch("submit");
    assert.equal(event.defaultPrevented, true);
    assert.deepEqual(taken, ["Good morning"]);
    assert.equal(input.value, "");
  });

  it("sends nothing for an empty line", () => {
    const { form, input, taken } = chat();
    input.value = "   ";
    form.dispatch("submit");
    assert.deepEqual(taken, []);
  });

  it("keeps the line when it was not taken (no call)", () => {
    const { form, input, taken } = chat(false);
    input.value = "still here";
    form.dispatch("submit");
    assert.deepEqual(taken, ["still here"]);
    assert.equal(input.value, "still here");
  });
});
