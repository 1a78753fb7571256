// Small DOM helpers every page uses: find by id, build an element with its text and
// attributes, show one view of several, the page's notice line, and a list rebuilt without
// losing a keyboard user's place. Text always goes in as textContent, never as HTML.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** <tag> with its text, class and attributes. */
export function element(tag, { text, className, attrs } = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

/** A <button type="button"> that calls onClick; `label` is its accessible name when the text
 * alone does not say what it acts on. */
export function button(text, onClick, { className, label } = {}) {
  const node = element("button", { text, className, attrs: { type: "button" } });
  if (label) node.setAttribute("aria-label", label);
  node.addEventListener("click", onClick);
  return node;
}

/** A table cell with text or a node, appended to `row`. */
export function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  row.append(td);
  return td;
}

/** Show the element `view` of those with the ids in `views`; hide the others. */
export function showOnly(views, view) {
  for (const id of views) $(id).hidden = id !== view;
}

/** Say `text` to screen-reader users through the page's visually hidden, polite live region
 * (#announcer); the same text twice is said twice. */
export function announce(text) {
  const region = $("announcer");
  if (!region) return;
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 100);
}

/** The page's notice line (#notice, a polite live region): `text`, or hidden when empty. */
export function notice(text, { error = false } = {}) {
  const line = $("notice");
  line.textContent = text || "";
  line.classList.toggle("error", Boolean(error));
  line.hidden = !text;
}

/** Rebuild with `render()` the lists matched by `selector`, keeping the focus on the same button
 * (a keyboard user's place survives an update): the one with the same `data-control` in the row
 * with the same `data-row` where the list names them (a label may change with the row's state),
 * else the one with the same accessible name. When that button is now disabled, or gone, the
 * focus goes to the first button of the same row that can take it. */
export function keepingFocus(selector, render) {
  const active = document.activeElement?.closest(selector) ? document.activeElement : null;
  const was = active && place(active);
  render();
  if (!was) return;
  const buttons = [...document.querySelectorAll(selector.split(",").map((part) => `${part.trim()} button`).join(", "))];
  const same = buttons.find((b) => place(b).key === was.key);
  const target = same && !same.disabled ? same : was.row && buttons.find((b) => place(b).row === was.row && !b.disabled);
  target?.focus();
}

function place(node) {
  const row = node.closest("[data-row]")?.dataset.row;
  return { row, key: row && node.dataset.control ? `${row} ${node.dataset.control}` : node.getAttribute("aria-label") };
}
