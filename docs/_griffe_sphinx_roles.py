"""A griffe extension for the API reference: Sphinx roles in docstrings become links.

The library's docstrings are Google style, but their cross-references are Sphinx roles
(``:class:`~httpx_resilience.Context```, ``:meth:`Pipeline.standard() <...>```), which Markdown
would show as they are written. This turns each into an optional autorefs link: a link when the
target is on the reference page, plain code otherwise (``httpx.AsyncClient``, ``time.monotonic``).
It also turns a paragraph ending in ``::`` (a reStructuredText literal block) into one ending in
``:``; the indented block after it is already a code block in Markdown. And a module attribute
documented by ``#:`` comment lines above it (Sphinx's convention) gets them as its docstring.

One more thing, for the options classes of ``httpx_resilience.profiles``: their dataclass fields
are declared as ``_field(<validator>, <default>)``, which a signature would show as such; the
signatures show the ``<default>`` instead (and no default for a required field). And the
builder's shorthand methods (``timeout = _shorthand(Timeout)``), whose docstring is only set at
run time, get that docstring here.

Loaded by the first ``:::`` block of ``docs/reference.md`` (``options: extensions:``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|func|data|attr|mod|exc|obj|const):"
    r"`(?P<tilde>~)?(?P<text>[^`<]+?)\s*(?:<(?P<target>[^>`]+)>)?`"
)
_LITERAL_BLOCK = re.compile(r"(?<=\S)::\n")
_PACKAGE = "httpx_resilience"


def _target(obj: griffe.Object, name: str) -> str:
    name = name.strip().rstrip("()")
    if name.startswith(_PACKAGE + ".") or name == _PACKAGE:
        return name
    head, _, rest = name.partition(".")
    try:
        resolved = obj.resolve(head)
    except Exception:  # anything unresolvable stays plain code
        return name
    return f"{resolved}.{rest}" if rest else resolved


def _rewrite(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        shown = match["text"].strip()
        target = _target(obj, match["target"] or shown)
        if match["tilde"] and not match["target"]:
            shown = shown.rsplit(".", 1)[-1]
        code = f"<code>{html.escape(shown)}</code>"
        if not target.startswith(_PACKAGE):
            return code
        return f'<autoref identifier="{html.escape(target)}" optional>{code}</autoref>'

    return _LITERAL_BLOCK.sub(":\n", _ROLE.sub(replace, text))


def _comment_docstring(obj: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines right above an attribute, as its docstring."""
    if not obj.is_attribute or obj.lineno is None:
        return None
    try:
        lines = obj.lines_collection[obj.filepath]  # type: ignore[index]
    except Exception:  # no source: no comment
        return None
    found: list[str] = []
    index = obj.lineno - 2
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        found.insert(0, lines[index].lstrip()[2:].strip())
        index -= 1
    if not found:
        return None
    return griffe.Docstring(" ".join(found), lineno=index + 2, parent=obj)


_NO_DEFAULT: Any = object()


def _field_default(value: Any) -> Any:
    """The default inside a ``_field(validator, default, ...)`` field declaration."""
    if not isinstance(value, griffe.ExprCall) or str(value.function) != "_field":
        return _NO_DEFAULT
    positional = [a for a in value.arguments if not isinstance(a, griffe.ExprKeyword)]
    return positional[1] if len(positional) > 1 else None


def _plain_defaults(cls: griffe.Class) -> None:
    for member in cls.members.values():
        value = getattr(member, "value", None)
        if (
            member.is_attribute
            and member.docstring is None
            and isinstance(value, griffe.ExprCall)
            and str(value.function) == "_shorthand"
        ):
            name = str(value.arguments[0])
            text = f"Add a :class:`~httpx_resilience.{name}`; takes the same options."
            member.docstring = griffe.Docstring(text, parent=member)
        if member.is_attribute and not member.is_alias:
            default = _field_default(member.value)  # type: ignore[union-attr]
            if default is not _NO_DEFAULT:
                member.value = default  # type: ignore[union-attr]
    init = cls.members.get("__init__")
    if init is not None and not init.is_alias and init.is_function:
        for parameter in init.parameters:  # type: ignore[union-attr]
            default = _field_default(parameter.default)
            if default is not _NO_DEFAULT:
                parameter.default = default


class SphinxRoles(griffe.Extension):
    """Rewrite the docstrings of every object of a package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.is_class:
                _plain_defaults(obj)  # type: ignore[arg-type]
            if obj.docstring is None:
                obj.docstring = _comment_docstring(obj)
            if obj.docstring is not None:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
            for member in obj.members.values():
                if not member.is_alias:
                    stack.append(member)  # type: ignore[arg-type]
