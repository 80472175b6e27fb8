"""Link and image targets in plugin READMEs: only http(s), mailto and relative ones survive.

Complements test_plugin_markdown.py; every case is also checked for tags and attributes a
browser would act on.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tercet.plugins.markdown import inline, render_markdown

SAFE_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "pre", "code",
             "blockquote", "hr", "a", "strong", "em", "img", "br"}
SAFE_ATTRS = {"href", "src", "alt", "title", "rel", "class", "start"}
BAD_SCHEMES = ("javascript:", "vbscript:", "data:", "file:")


def _tags(html: str) -> list[tuple[str, dict[str, str]]]:
    """Every start tag a browser would see in *html*, with its decoded attributes."""
    found: list[tuple[str, dict[str, str]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, {k: v or "" for k, v in attrs}))

    Collector().feed(html)
    return found


def _assert_harmless(html: str) -> None:
    for tag, attrs in _tags(html):
        assert tag in SAFE_TAGS, html
        assert set(attrs) <= SAFE_ATTRS, html
        for name in ("href", "src"):
            # What a browser does: strip control characters and spaces, ignore case.
            target = "".join(c for c in attrs.get(name, "") if ord(c) > 0x20).lower()
            assert not target.startswith(BAD_SCHEMES), html


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x]( javascript:alert(1) )",
        "[x](<javascript:alert(1)>)",
        "[x](&#106;avascript:alert(1))",
        "[x](&#x6A;avascript&colon;alert(1))",
        "[x](java\tscript:alert(1))",
        "[x](javas&#x09;cript:alert(1))",
        "[x](vbscript:msgbox)",
        "[x](file:///etc/passwd)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
        "[x]\n\n[x]: javascript:alert(1)\n",
        "[x]\n\n[x]: <data:text/html,<script>alert(1)</script>>\n",
    ],
)
def test_bad_link_targets_stay_text(text: str) -> None:
    html = render_markdown(text)
    _assert_harmless(html)
    assert "<a" not in html


@pytest.mark.parametrize(
    "text",
    [
        "![x](data:image/png;base64,iVBORw0KGgo=)",
        "![x](data:image/svg+xml,<svg onload=alert(1)>)",
        "![x](javascript:alert(1))",
        "![x](DATA:image/gif;base64,R0lGOD)",
        "![x][i]\n\n[i]: data:image/png;base64,iVBORw0KGgo=\n",
    ],
)
def test_bad_image_sources_stay_text(text: str) -> None:
    html = render_markdown(text)
    _assert_harmless(html)
    assert "<img" not in html


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<script>\nalert(1)\n</script>\n\ntext",
        "<div onclick=alert(1)>\n\n*x*\n\n</div>",
        "a <span style=x>b</span> <!-- c --> <?php d ?>",
        "<iframe src=javascript:alert(1)></iframe>",
        "<svg><script>alert(1)</script></svg>",
        "- <style>body{}</style>\n- <b onmouseover=x>y</b>",
    ],
)
def test_raw_html_is_text(text: str) -> None:
    html = render_markdown(text)
    _assert_harmless(html)
    assert "<script" not in html and "&lt;" in html


@pytest.mark.parametrize(
    "text",
    [
        '[a" onmouseover="alert(1)](https://x.org/)',
        '[a](https://x.org/"onmouseover="alert(1))',
        '[a](https://x.org/ "t\\" onmouseover=\\"alert(1)")',
        "[a](https://x.org/ 'it''s <b>')",
        '![a" onerror="alert(1)](https://x.org/i.png)',
        '![a](https://x.org/i.png "t\\" onerror=\\"alert(1)")',
        '```x" onclick="alert(1)\ncode\n```',
        "`<b onclick=x>`",
    ],
)
def test_markup_in_attributes_is_escaped(text: str) -> None:
    html = render_markdown(text)
    _assert_harmless(html)
    assert not any(k.startswith("on") for _, attrs in _tags(html) for k in attrs)


def test_safe_targets_are_kept() -> None:
    html = render_markdown(
        "[a](https://x.org/a?b=1&c=2) [b](http://x.org) [c](mailto:me@x.org) [d](docs/e.html) "
        "[e](#usage) [f](/abs) <https://auto.org> <me@x.org> ![i](img/logo.png \"Logo\") "
        "![j](https://x.org/j.png)"
    )
    _assert_harmless(html)
    hrefs = [attrs["href"] for tag, attrs in _tags(html) if tag == "a"]
    assert hrefs == ["https://x.org/a?b=1&c=2", "http://x.org", "mailto:me@x.org", "docs/e.html",
                     "#usage", "/abs", "https://auto.org", "mailto:me@x.org"]
    images = [attrs for tag, attrs in _tags(html) if tag == "img"]
    assert images == [{"src": "img/logo.png", "alt": "i", "title": "Logo"},
                      {"src": "https://x.org/j.png", "alt": "j"}]


def test_every_link_is_nofollow() -> None:
    html = render_markdown("[a](https://x.org) <https://y.org>\n\n[r]\n\n[r]: https://z.org\n")
    links = [attrs for tag, attrs in _tags(html) if tag == "a"]
    assert len(links) == 3 and all(a["rel"] == "nofollow" for a in links)


def test_inline_rendering_is_filtered_too() -> None:
    assert inline("[x](javascript:alert(1)) <b>") == "[x](javascript:alert(1)) &lt;b&gt;"
    assert inline("*a* [b](https://x.org)") == (
        '<em>a</em> <a href="https://x.org" rel="nofollow">b</a>')


def test_code_keeps_quotes_and_escapes_markup() -> None:
    html = render_markdown('```toml\nmotd = "<b>hi</b>"\n```\n')
    assert html == ('<pre><code class="language-toml">motd = "&lt;b&gt;hi&lt;/b&gt;"\n'
                    "</code></pre>\n")
