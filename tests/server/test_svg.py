"""The SVG logo sanitiser: hostile documents are cleaned or refused, drawings survive."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from server.svg import ELEMENTS, MAX_SVG_BYTES, SVG_NS, SvgError, sanitize_svg

HEAD = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def _svg(body: str, attributes: str = ' viewBox="0 0 100 100"') -> bytes:
    return f"{HEAD}{attributes}>{body}</svg>".encode()


def _parse(output: bytes) -> ET.Element:
    # The sanitiser's own output: it never carries a document type.
    return ET.fromstring(output)  # noqa: S314


def _clean(body: str, attributes: str = ' viewBox="0 0 100 100"') -> ET.Element:
    """Sanitise, check the output is safe, and return it parsed."""
    output, _ = sanitize_svg(_svg(body, attributes))
    root = _parse(output)
    _assert_safe(root)
    return root


def _assert_safe(root: ET.Element) -> None:
    assert root.tag == f"{{{SVG_NS}}}svg"
    for element in root.iter():
        namespace, _, name = element.tag[1:].partition("}")
        assert namespace == SVG_NS and name in ELEMENTS, element.tag
        for attribute, value in element.attrib.items():
            assert not attribute.lower().startswith("on"), attribute
            assert "javascript:" not in value.lower()
            if attribute.endswith("href"):
                assert value.startswith("#"), value
            if "url(" in value.lower():
                assert attribute in ("fill", "stroke") and "url(#" in value, (attribute, value)
        if name == "style":
            assert "url(" not in (element.text or "") and "@" not in (element.text or "")


def _names(root: ET.Element) -> list[str]:
    return [element.tag.rpartition("}")[2] for element in root.iter()]


def test_a_clean_logo_keeps_its_drawing() -> None:
    body = (
        "<title>Stadt Musterhausen</title>"
        '<defs><linearGradient id="g" x1="0" x2="1"><stop offset="0" stop-color="#0b5cad"/>'
        '<stop offset="1" stop-color="#006b5f"/></linearGradient></defs>'
        '<g transform="translate(5 5)"><rect width="90" height="40" rx="4" fill="url(#g)"/>'
        '<circle cx="20" cy="70" r="10" stroke="#000" stroke-width="2" fill="none"/>'
        '<path d="M0 0 L10 10Z" fill-rule="evenodd"/>'
        '<text x="40" y="75" font-family="sans-serif" font-size="12">Stadt &amp; Land</text>'
        "</g>"
    )
    output, report = sanitize_svg(_svg(body))
    assert not report.changed
    root = _parse(output)
    assert _names(root) == [
        "svg",
        "title",
        "defs",
        "linearGradient",
        "stop",
        "stop",
        "g",
        "rect",
        "circle",
        "path",
        "text",
    ]
    assert root.attrib == {"viewBox": "0 0 100 100"}
    assert root.find(f".//{{{SVG_NS}}}rect").attrib["fill"] == "url(#g)"  # type: ignore[union-attr]
    assert root.find(f".//{{{SVG_NS}}}text").text == "Stadt & Land"  # type: ignore[union-attr]
    assert b"&amp;" in output


def test_scripts_are_removed_wherever_they_are() -> None:
    body = (
        "<script>alert(1)</script>"
        '<g><script type="text/javascript"><![CDATA[alert(2)]]></script><rect width="1"/></g>'
        '<svg:script xmlns:svg="http://www.w3.org/2000/svg">alert(3)</svg:script>'
        '<html:script xmlns:html="http://www.w3.org/1999/xhtml">alert(4)</html:script>'
    )
    output, report = sanitize_svg(_svg(body))
    assert b"alert" not in output
    assert "script" in report.elements
    assert _names(_parse(output)) == ["svg", "g", "rect"]


def test_event_handlers_are_removed() -> None:
    root = _clean(
        '<rect width="10" onclick="alert(1)" ONMOUSEOVER="alert(2)"/>',
        attributes=' viewBox="0 0 1 1" onload="alert(3)"',
    )
    assert root.attrib == {"viewBox": "0 0 1 1"}
    assert root[0].attrib == {"width": "10"}


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "http://evil.example/logo.svg#g",
        "https://evil.example/x",
        "//evil.example/x",
        "data:image/svg+xml;base64,PHN2Zz4=",
        "file:///etc/passwd",
        "g",
    ],
)
def test_hrefs_must_point_into_the_document(href: str) -> None:
    root = _clean(
        f'<linearGradient id="a" href="{href}"/>'
        f'<linearGradient id="b" xlink:href="{href}"/>'
        '<linearGradient id="c" xlink:href="#a"/>'
    )
    first, second, third = list(root)
    assert first.attrib == {"id": "a"}
    assert second.attrib == {"id": "b"}
    # Written out as SVG 2's plain href.
    assert third.attrib == {"id": "c", "href": "#a"}


def test_links_images_use_and_animation_are_removed() -> None:
    root = _clean(
        '<a xlink:href="javascript:alert(1)"><text>click</text></a>'
        '<a href="https://evil.example"><rect width="5"/></a>'
        '<image href="https://tracker.example/pixel.png" width="1" height="1"/>'
        '<use href="#r"/>'
        '<rect id="r" width="1"><set attributeName="fill" to="red"/>'
        '<animate attributeName="href" values="javascript:alert(1)"/></rect>'
    )
    assert _names(root) == ["svg", "rect"]


def test_foreign_object_is_removed_with_its_html() -> None:
    output, report = sanitize_svg(
        _svg(
            '<foreignObject width="100" height="100"><div xmlns="http://www.w3.org/1999/xhtml">'
            '<iframe src="https://evil.example"></iframe><img src="x" onerror="alert(1)"/>'
            "</div></foreignObject><rect width='1'/>"
        )
    )
    assert b"iframe" not in output and b"onerror" not in output and b"div" not in output
    assert report.elements == {"foreignObject"}
    assert _names(_parse(output)) == ["svg", "rect"]


@pytest.mark.parametrize(
    "style",
    [
        "fill: url(https://evil.example/a.svg#p)",
        "fill: URL( 'https://evil.example' )",
        "background: u\\72l(https://evil.example)",
        "width: expression(alert(1))",
        "@import 'https://evil.example/x.css'",
        "fill: red; -moz-binding: x",
        "background-image: image-set('https://evil.example/x.png' 1x)",
    ],
)
def test_style_attributes_that_could_load_anything_are_removed(style: str) -> None:
    root = _clean(f'<rect width="1" style="{style}"/><circle r="1" style="fill: red"/>')
    rect, circle = list(root)
    assert rect.attrib == {"width": "1"}
    assert circle.attrib == {"r": "1", "style": "fill: red"}


def test_style_elements_that_could_load_anything_are_emptied() -> None:
    root = _clean(
        "<style>@import url(https://evil.example/x.css); rect { fill: red }</style>"
        "<style>@font-face { font-family: x; src: local(x) }</style>"
        "<style>rect { fill: blue }</style>"
    )
    assert [style.text for style in root] == [None, None, "rect { fill: blue }"]


@pytest.mark.parametrize(
    "paint",
    [
        "url(https://evil.example/p.svg#g)",
        "url(data:image/png;base64,AAAA)",
        "url('#g')x url(https://evil.example)",
        "javascript:alert(1)",
    ],
)
def test_paint_may_only_point_at_a_gradient_in_the_document(paint: str) -> None:
    root = _clean(f'<rect width="1" fill="{paint}" stroke="url(#g) red"/>')
    assert root[0].attrib == {"width": "1", "stroke": "url(#g) red"}


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;'
        b'&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&c;</text></svg>',
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"><svg xmlns="http://www.w3.org/2000/svg"/>',
        b'<!doctype svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&xxe;</text></svg>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><!ENTITY x "y"></svg>',
        b'<!  DOCTYPE svg><svg xmlns="http://www.w3.org/2000/svg"/>',
    ],
)
def test_document_types_and_entities_are_refused_before_parsing(document: bytes) -> None:
    with pytest.raises(SvgError, match="declaration"):
        sanitize_svg(document)


def test_other_encodings_are_refused() -> None:
    document = '<!DOCTYPE svg><svg xmlns="http://www.w3.org/2000/svg"/>'.encode("utf-16")
    with pytest.raises(SvgError, match="not UTF-8"):
        sanitize_svg(document)


def test_a_huge_file_is_refused() -> None:
    padding = "<!--" + "x" * MAX_SVG_BYTES + "-->"
    with pytest.raises(SvgError, match="too large: at most 256 KiB"):
        sanitize_svg(_svg(padding))


def test_too_many_or_too_deeply_nested_elements_are_refused() -> None:
    with pytest.raises(SvgError, match="too many elements"):
        sanitize_svg(_svg("<g/>" * 6000))
    with pytest.raises(SvgError, match="deeper than 32"):
        sanitize_svg(_svg("<g>" * 40 + "</g>" * 40))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"<svg><rect></svg>", "not well-formed"),
        (b"<html xmlns='http://www.w3.org/1999/xhtml'/>", "root element is 'html'"),
        (b"<svg><rect/></svg>", "SVG namespace"),
        (b"\xff\xfe\x00<svg", "not UTF-8"),
        (b"", "not well-formed"),
    ],
)
def test_what_is_not_an_svg_is_refused_with_a_reason(document: bytes, reason: str) -> None:
    with pytest.raises(SvgError, match=reason):
        sanitize_svg(document)


def test_comments_processing_instructions_and_foreign_attributes_go() -> None:
    output, _ = sanitize_svg(
        b'<?xml version="1.0"?><?xml-stylesheet href="https://evil.example/x.css"?>'
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/ns"'
        b' inkscape:version="1.3" xml:space="preserve"><!-- secret --><rect width="1"'
        b' inkscape:label="x" data-x="1"/></svg>'
    )
    assert b"stylesheet" not in output and b"secret" not in output and b"inkscape" not in output
    root = _parse(output)
    assert root.attrib == {"{http://www.w3.org/XML/1998/namespace}space": "preserve"}
    assert root[0].attrib == {"width": "1"}


def test_text_and_attribute_values_are_escaped_on_output() -> None:
    output, _ = sanitize_svg(
        _svg('<text font-family="&quot;A&quot; &lt;b&gt;">1 &lt; 2 &amp;&amp; 3 &gt; 2</text>')
    )
    text = _parse(output)[0]
    assert text.text == "1 < 2 && 3 > 2"
    assert text.attrib["font-family"] == '"A" <b>'
    assert b"<b>" not in output


def test_text_after_a_removed_element_is_kept() -> None:
    root = _clean("<text>Stadt<script>x</script> Muster<a>link</a>hausen</text>")
    assert "".join(root[0].itertext()) == "Stadt Musterhausen"
