"""Making an uploaded SVG logo safe to serve: parse, keep an allowlist, write it out again.

An SVG is a document that can run scripts, load other files and embed HTML. The logo is shown
on the citizens' page and on booths, so only drawing survives:

- a document type (``<!DOCTYPE``, ``<!ENTITY``) is refused before parsing: no entity bombs,
  no external entities;
- elements: shapes, text, gradients, groups, ``defs``, ``title`` and ``desc``, and ``style``
  without anything that loads (see below); all others are dropped with their content
  (``script``, ``foreignObject``, ``image``, ``use``, ``a``, animation, other namespaces);
- attributes: geometry and presentation attributes only; no event handlers (``on*``); a
  ``href`` (or ``xlink:href``, written out as ``href``) only when it points into the document
  (``#id``); ``fill``/``stroke`` take ``url(#id)`` only;
- CSS (``style`` attributes and elements) is dropped when it contains ``url(``, ``@`` rules
  (``@import``, ``@font-face``), ``image-set``, ``expression``, ``javascript:`` or escapes.

Comments and processing instructions are dropped by the parser. The result is re-serialised
from the tree, so nothing the parser did not understand is passed through.
"""

from __future__ import annotations

import html
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

__all__ = ["MAX_ELEMENTS", "MAX_SVG_BYTES", "SvgError", "SvgReport", "sanitize_svg"]

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

MAX_SVG_BYTES = 256 * 1024
MAX_ELEMENTS = 5000
MAX_DEPTH = 32

ELEMENTS = frozenset(
    {
        "svg",
        "g",
        "defs",
        "title",
        "desc",
        "style",
        "path",
        "rect",
        "circle",
        "ellipse",
        "line",
        "polyline",
        "polygon",
        "text",
        "tspan",
        "linearGradient",
        "radialGradient",
        "stop",
    }
)

ATTRIBUTES = frozenset(
    {
        # structure and geometry
        "id",
        "class",
        "version",
        "viewBox",
        "preserveAspectRatio",
        "width",
        "height",
        "x",
        "y",
        "x1",
        "y1",
        "x2",
        "y2",
        "cx",
        "cy",
        "r",
        "rx",
        "ry",
        "fx",
        "fy",
        "fr",
        "d",
        "points",
        "pathLength",
        "transform",
        "dx",
        "dy",
        "rotate",
        "textLength",
        "lengthAdjust",
        # gradients
        "offset",
        "gradientUnits",
        "gradientTransform",
        "spreadMethod",
        "stop-color",
        "stop-opacity",
        # presentation
        "fill",
        "fill-opacity",
        "fill-rule",
        "stroke",
        "stroke-width",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-miterlimit",
        "stroke-dasharray",
        "stroke-dashoffset",
        "stroke-opacity",
        "opacity",
        "color",
        "clip-rule",
        "display",
        "visibility",
        "vector-effect",
        "shape-rendering",
        "text-rendering",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "font-variant",
        "font-stretch",
        "text-anchor",
        "text-decoration",
        "dominant-baseline",
        "alignment-baseline",
        "baseline-shift",
        "letter-spacing",
        "word-spacing",
        "writing-mode",
        "direction",
        "unicode-bidi",
        "style",
        "type",  # of <style>
        "media",  # of <style>
    }
)
_PAINT = frozenset({"fill", "stroke"})
_HREFS = frozenset({"href", f"{{{XLINK_NS}}}href"})
_XML_ATTRIBUTES = {f"{{{XML_NS}}}space": "xml:space", f"{{{XML_NS}}}lang": "xml:lang"}

_DOCTYPE = re.compile(rb"<!\s*(doctype|entity|element|attlist|notation)", re.IGNORECASE)
_LOCAL_URL = re.compile(r"\s*url\(\s*#[A-Za-z_][\w.:-]*\s*\)(\s+[#\w(),.% -]*)?\s*")
_INTERNAL_HREF = re.compile(r"#[A-Za-z_][\w.:-]*")
# What could load something or run script from CSS; escapes could spell any of it.
_HOSTILE_CSS = re.compile(r"url\(|@|image-set|expression|javascript:|behavio|binding|\\")
_HOSTILE_VALUE = re.compile(r"javascript:|vbscript:|data:", re.IGNORECASE)


class SvgError(ValueError):
    """The upload cannot be used as an SVG logo; the message says why."""


@dataclass
class SvgReport:
    """What the sanitiser removed, for the log (names only, no content)."""

    elements: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.elements or self.attributes)


def _local(name: str) -> tuple[str | None, str]:
    """``(namespace, local name)`` of an ElementTree name such as ``{ns}rect``."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return None, name


def _hostile_css(css: str) -> bool:
    return bool(_HOSTILE_CSS.search(css.lower()))


def _keep_attribute(name: str, value: str) -> tuple[str, str] | None:
    """The attribute as written out, or None to drop it."""
    if name in _HREFS:
        target = value.strip()
        return ("href", target) if _INTERNAL_HREF.fullmatch(target) else None
    if name in _XML_ATTRIBUTES:
        return (_XML_ATTRIBUTES[name], value)
    namespace, local = _local(name)
    if namespace is not None or local not in ATTRIBUTES:
        return None
    if local == "style":
        return None if _hostile_css(value) else (local, value)
    if _HOSTILE_VALUE.search(value):
        return None
    if "url(" in value.lower():
        # Paint may point at a gradient in this document, nothing else may load anything.
        return (local, value) if local in _PAINT and _LOCAL_URL.fullmatch(value) else None
    return (local, value)


def _clean(element: ET.Element, report: SvgReport, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SvgError(f"the SVG nests elements deeper than {MAX_DEPTH} levels")
    _, name = _local(element.tag)
    for attribute, value in list(element.attrib.items()):
        kept = _keep_attribute(attribute, value)
        del element.attrib[attribute]
        if kept is None:
            report.attributes.add(_local(attribute)[1])
        else:
            element.set(*kept)
    if name == "style" and _hostile_css(element.text or ""):
        element.text = ""
        report.elements.add("style (unsafe CSS)")
    for child in list(element):
        namespace, child_name = _local(child.tag)
        if namespace == SVG_NS and child_name in ELEMENTS and child_name != "svg":
            _clean(child, report, depth + 1)
            continue
        report.elements.add(child_name)
        _drop(element, child)


def _drop(parent: ET.Element, child: ET.Element) -> None:
    """Remove *child* with its content, keeping the text that followed it."""
    if child.tail:
        index = list(parent).index(child)
        if index > 0:
            previous = parent[index - 1]
            previous.tail = (previous.tail or "") + child.tail
        else:
            parent.text = (parent.text or "") + child.tail
    parent.remove(child)


def _write(element: ET.Element, out: list[str], *, root: bool = False) -> None:
    """Serialise the cleaned tree: SVG elements by local name, attributes as kept."""
    name = _local(element.tag)[1]
    out.append(f"<{name}")
    if root:
        out.append(f' xmlns="{SVG_NS}"')
    for attribute, value in element.attrib.items():
        escaped = html.escape(value, quote=False).replace('"', "&quot;")
        out.append(f' {attribute}="{escaped}"')
    if element.text is None and len(element) == 0:
        out.append("/>")
    else:
        out.append(">")
        out.append(html.escape(element.text or "", quote=False))
        for child in element:
            _write(child, out)
            out.append(html.escape(child.tail or "", quote=False))
        out.append(f"</{name}>")


def sanitize_svg(data: bytes) -> tuple[bytes, SvgReport]:
    """Return a safe copy of the SVG document *data* (UTF-8) and what was removed.

    Raises :class:`SvgError` for a file over :data:`MAX_SVG_BYTES`, a document type or entity
    declaration, malformed XML, a root that is not ``<svg>`` in the SVG namespace, more than
    :data:`MAX_ELEMENTS` elements or nesting deeper than 32 levels.
    """
    if len(data) > MAX_SVG_BYTES:
        raise SvgError(f"the SVG is too large: at most {MAX_SVG_BYTES // 1024} KiB")
    if _DOCTYPE.search(data):
        raise SvgError(
            "the SVG contains a document type or entity declaration (<!DOCTYPE or <!ENTITY); "
            "save it again without one"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SvgError("the SVG is not UTF-8 text") from None
    if "<!" in text.replace("<![CDATA[", "").replace("<!--", ""):
        # Another spelling of a declaration (e.g. in another encoding): refuse, never parse.
        raise SvgError("the SVG contains a markup declaration (<!...); save it again without one")
    try:
        root = ET.fromstring(text)  # noqa: S314 (declarations refused above)
    except ET.ParseError as exc:
        raise SvgError(f"the SVG is not well-formed XML: {exc}") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise SvgError(
            f"the file's root element is {_local(root.tag)[1]!r}, not an <svg> in the SVG "
            f'namespace (xmlns="{SVG_NS}")'
        )
    count = sum(1 for _ in root.iter())
    if count > MAX_ELEMENTS:
        raise SvgError(f"the SVG has too many elements: at most {MAX_ELEMENTS} (it has {count})")
    report = SvgReport()
    _clean(root, report, 0)
    out: list[str] = []
    _write(root, out, root=True)
    cleaned = "".join(out)
    if report.changed:
        log.info(
            "SVG logo cleaned: removed elements %s, attributes %s",
            ", ".join(sorted(report.elements)) or "none",
            ", ".join(sorted(report.attributes)) or "none",
        )
    return cleaned.encode("utf-8"), report
