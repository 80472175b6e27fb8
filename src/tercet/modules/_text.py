"""Small text helpers shared by built-in modules (not a module itself: it has no load())."""

from __future__ import annotations


def render(template: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` placeholders; other braces are left as written."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template
