"""A small, safe Markdown-to-HTML renderer for plugin READMEs.

It knows ATX headings, paragraphs, bullet and numbered lists (nested by indentation), fenced and
indented code blocks, block quotes, horizontal rules, inline code, links, ``**strong**`` and
``*emphasis*``. Everything else, raw HTML included, is escaped: READMEs come from plugin authors
and end up on the repository's pages, so the output must never carry their markup or scripts.
Links keep only http(s), mailto and relative targets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlsplit

__all__ = ["render_markdown"]

# A README is documentation, not a book: bound the work done on one.
MAX_INPUT_CHARS = 512 * 1024
MAX_NESTING = 8

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)[^`]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"^( *)([-*+])[ \t]+(.*)$")
_ORDERED = re.compile(r"^( *)(\d{1,9})[.)][ \t]+(.*)$")
_QUOTE = re.compile(r"^ {0,3}> ?(.*)$")
_LINK = re.compile(r"\[([^\[\]]+)\]\(\s*<?([^()\s<>]*)>?(?:\s+\"([^\"]*)\")?\s*\)")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_EM = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])|(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")
_LANG = re.compile(r"^[A-Za-z0-9_+-]{1,32}$")
_SAFE_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    """Render Markdown *text* to an HTML fragment (no ``<html>``/``<body>``)."""
    lines = text[:MAX_INPUT_CHARS].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = [line.expandtabs(4) for line in lines]
    return "".join(_Blocks(lines).render())


@dataclass
class _Blocks:
    lines: list[str]
    depth: int = 0  # block-quote nesting
    pos: int = 0
    out: list[str] = field(default_factory=list)

    def render(self) -> list[str]:
        while self.pos < len(self.lines):
            self._block()
        return self.out

    def _block(self) -> None:
        line = self.lines[self.pos]
        if not line.strip():
            self.pos += 1
        elif m := _FENCE.match(line):
            self._fenced(m.group(1), m.group(2))
        elif m := _HEADING.match(line):
            level = len(m.group(1))
            self.out.append(f"<h{level}>{inline(m.group(2) or '')}</h{level}>\n")
            self.pos += 1
        elif _RULE.match(line):
            self.out.append("<hr>\n")
            self.pos += 1
        elif line.startswith("    "):
            self._indented_code()
        elif _QUOTE.match(line) and self.depth < MAX_NESTING:
            self._quote()
        elif _BULLET.match(line) or _ORDERED.match(line):
            self.out.append(self._list(0))
        else:
            self._paragraph()

    def _fenced(self, fence: str, lang: str) -> None:
        self.pos += 1
        body: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            self.pos += 1
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                break
            body.append(line)
        cls = f' class="language-{lang}"' if _LANG.match(lang) else ""
        self.out.append(f"<pre><code{cls}>{_code_text(body)}</code></pre>\n")

    def _indented_code(self) -> None:
        body: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if line.startswith("    "):
                body.append(line[4:])
            elif not line.strip():
                body.append("")
            else:
                break
            self.pos += 1
        while body and not body[-1]:
            body.pop()
        self.out.append(f"<pre><code>{_code_text(body)}</code></pre>\n")

    def _quote(self) -> None:
        inner: list[str] = []
        while self.pos < len(self.lines) and (m := _QUOTE.match(self.lines[self.pos])):
            inner.append(m.group(1))
            self.pos += 1
        body = "".join(_Blocks(inner, self.depth + 1).render())
        self.out.append(f"<blockquote>\n{body}</blockquote>\n")

    def _paragraph(self) -> None:
        para: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if not line.strip() or (para and _starts_block(line)):
                break
            para.append(line.strip())
            self.pos += 1
        self.out.append(f"<p>{inline(' '.join(para))}</p>\n")

    def _list(self, depth: int) -> str:
        first = self.lines[self.pos]
        ordered = _ORDERED.match(first) is not None and _BULLET.match(first) is None
        indent = len(first) - len(first.lstrip(" "))
        tag = "ol" if ordered else "ul"
        items: list[str] = []
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if not line.strip() and self._next_item_at(indent, ordered):
                self.pos += 1  # a blank line between two items of the same list
                continue
            m = (_ORDERED if ordered else _BULLET).match(line)
            if m is None or len(m.group(1)) != indent:
                break
            self.pos += 1
            items.append(self._list_item(m.group(3), indent, depth))
        start = ""
        if ordered and (number := int(_ORDERED.match(first).group(2))) != 1:  # type: ignore[union-attr]
            start = f' start="{number}"'
        return f"<{tag}{start}>\n" + "".join(items) + f"</{tag}>\n"

    def _next_item_at(self, indent: int, ordered: bool) -> bool:
        nxt = self.pos
        while nxt < len(self.lines) and not self.lines[nxt].strip():
            nxt += 1
        if nxt >= len(self.lines):
            return False
        m = (_ORDERED if ordered else _BULLET).match(self.lines[nxt])
        return m is not None and len(m.group(1)) == indent

    def _list_item(self, first_text: str, indent: int, depth: int) -> str:
        text = [first_text.strip()]
        nested = ""
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            stripped = line.lstrip(" ")
            deeper = len(line) - len(stripped) > indent
            if not line.strip():
                break
            if deeper and (_BULLET.match(line) or _ORDERED.match(line)):
                if depth + 1 >= MAX_NESTING:
                    text.append(stripped)
                    self.pos += 1
                    continue
                nested += self._list(depth + 1)
                continue
            if _BULLET.match(line) or _ORDERED.match(line) or _starts_block(line) or nested:
                break
            text.append(stripped)  # a lazy continuation line of the item's text
            self.pos += 1
        return f"<li>{inline(' '.join(text))}{nested}</li>\n"


def _starts_block(line: str) -> bool:
    return bool(
        _HEADING.match(line)
        or _FENCE.match(line)
        or _RULE.match(line)
        or _QUOTE.match(line)
        or _BULLET.match(line)
        or _ORDERED.match(line)
    )


def _code_text(lines: list[str]) -> str:
    return escape("\n".join(lines) + ("\n" if lines else ""), quote=False)


def inline(text: str) -> str:
    """Render the inline Markdown of one block: code spans first, then links and emphasis."""
    parts: list[str] = []
    pos = 0
    while pos < len(text):
        tick = text.find("`", pos)
        if tick < 0:
            break
        run = len(text[tick:]) - len(text[tick:].lstrip("`"))
        close = text.find("`" * run, tick + run)
        if close < 0:
            break
        parts.append(_links(text[pos:tick]))
        code = text[tick + run : close].strip() or text[tick + run : close]
        parts.append(f"<code>{escape(code, quote=False)}</code>")
        pos = close + run
    parts.append(_links(text[pos:]))
    return "".join(parts)


def _links(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for m in _LINK.finditer(text):
        parts.append(_emphasis(escape(text[pos : m.start()], quote=False)))
        label = _emphasis(escape(m.group(1), quote=False))
        href = _safe_href(m.group(2))
        if href is None:
            parts.append(label)
        else:
            title = f' title="{escape(m.group(3))}"' if m.group(3) else ""
            parts.append(f'<a href="{escape(href)}"{title} rel="nofollow">{label}</a>')
        pos = m.end()
    parts.append(_emphasis(escape(text[pos:], quote=False)))
    return "".join(parts)


def _emphasis(escaped: str) -> str:
    escaped = _STRONG.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", escaped)
    return _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", escaped)


def _safe_href(url: str) -> str | None:
    """Keep http(s), mailto and relative links; drop javascript:, data: and the like."""
    if not url:
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    if scheme and scheme not in _SAFE_SCHEMES:
        return None
    # Control characters let browsers read "java\tscript:" as a scheme.
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        return None
    return url
