from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tercet.plugins.markdown import MAX_NESTING, render_markdown


def test_blocks() -> None:
    html = render_markdown(
        "# Title\n\nFirst line\nsecond line.\n\n## Usage\n\n- one\n- two\n  - nested\n\n"
        "1. first\n2. second\n\n```toml\nkey = \"<v>\"\n```\n\n"
        "    indented code\n\n> quoted\n\n---\n"
    )
    assert html == (
        "<h1>Title</h1>\n"
        "<p>First line\nsecond line.</p>\n"
        "<h2>Usage</h2>\n"
        "<ul>\n<li>one</li>\n<li>two\n<ul>\n<li>nested</li>\n</ul>\n</li>\n</ul>\n"
        "<ol>\n<li>first</li>\n<li>second</li>\n</ol>\n"
        '<pre><code class="language-toml">key = "&lt;v&gt;"\n</code></pre>\n'
        "<pre><code>indented code\n</code></pre>\n"
        "<blockquote>\n<p>quoted</p>\n</blockquote>\n"
        "<hr>\n"
    )


def test_inline() -> None:
    html = render_markdown("Use `a <b> & c`, **strong**, *em* and [docs](https://x.org/?a=1&b=2).")
    assert html == (
        "<p>Use <code>a &lt;b&gt; &amp; c</code>, <strong>strong</strong>, <em>em</em> and "
        '<a href="https://x.org/?a=1&amp;b=2" rel="nofollow">docs</a>.</p>\n'
    )


def test_words_with_underscores_are_not_emphasis() -> None:
    assert render_markdown("set motd_text_here") == "<p>set motd_text_here</p>\n"


@pytest.mark.parametrize(
    "text",
    [
        '<script>alert(1)</script>',
        '<img src=x onerror="alert(1)">',
        "[x](javascript:alert(1))",
        "[x](JavaScript:alert)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox)",
        '```"><script>\ncode\n```',
        '# <a href="javascript:x">h</a>',
        "- <iframe src=x>",
    ],
)
def test_nothing_executable_survives(text: str) -> None:
    tags = _tags(render_markdown(text))
    assert {name for name, _ in tags} <= ALLOWED_TAGS
    for _name, attrs in tags:
        assert set(attrs) <= {"href", "title", "rel", "class", "start"}
        href = (attrs.get("href") or "").lower()
        assert not href.startswith(("javascript", "data", "vbscript"))


ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "pre", "code",
                "blockquote", "hr", "a", "strong", "em"}


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every start tag a browser would see in *html*."""
    found: list[tuple[str, dict[str, str | None]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, dict(attrs)))

    Collector().feed(html)
    return found


def test_raw_html_is_shown_as_text() -> None:
    assert render_markdown("a <b>bold</b> claim") == "<p>a &lt;b&gt;bold&lt;/b&gt; claim</p>\n"


def test_relative_and_mailto_links_are_kept() -> None:
    html = render_markdown("[a](docs/x.html) [b](mailto:me@example.org)")
    assert '<a href="docs/x.html" rel="nofollow">a</a>' in html
    assert '<a href="mailto:me@example.org" rel="nofollow">b</a>' in html


def test_unterminated_fence_and_deep_nesting_terminate() -> None:
    assert render_markdown("```\nnever closed").startswith("<pre><code>never closed")
    deep = "\n".join("  " * i + "- x" for i in range(50))
    assert render_markdown(deep).count("<ul>") <= MAX_NESTING // 2 + 1
    assert render_markdown("> " * 100 + "x").count("<blockquote>") <= MAX_NESTING
