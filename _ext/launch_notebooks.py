"""Launch notebooks: every chapter as plain Jupyter Markdown that reads like the book.

A Sphinx extension (listed in _config.yml under ``local_extensions``). At the end of every
HTML build (``make book``, and the student edition's build) it writes, for every notebook
page, a *launch notebook*:

* ``_build/launch/<page>.ipynb`` (next to ``_build/html``): what the GitHub workflow
  publishes on the generated branch that the Binder and Colab buttons open
  (``scripts/launch_branch.py``), and what the student edition turns into handouts;
* ``_build/html/_sources/<page>.ipynb``: the file behind the page's ``.ipynb`` download
  button, replaced by the launch notebook.

A launch notebook has the chapter's code cells, unchanged and in the same order, with the
outputs stored in the chapter (the book's outputs), minus the invisible glue records. Its
markdown is the chapter's MyST markdown rendered to the Markdown that JupyterLab and Colab
display:

* ``{glue:text}`key:fmt``` and the other glue roles/directives: the value stored in the
  notebook's outputs (the glue record), formatted with MyST-NB's own function; values that
  are not text (figures, tables) as the stored output (an embedded image, the HTML table);
* ``{numref}``, ``{ref}``, ``{doc}``, ``{eq}``: the text the HTML book shows ("Fig. 2.3",
  "Exercise 2.1", the section or page title), taken from this build's Sphinx environment,
  linked to the published page (``html_baseurl``, or derived from ``repository.url``:
  ``https://github.com/OWNER/NAME`` is published at ``https://OWNER.github.io/NAME/``);
* headings carry their section numbers ("## 2.1. Overview"), as in the book;
* admonitions become block quotes with a bold title; exercises a heading "Exercise 2.1"
  (anchored with their label); a ``{solution}`` becomes ``<details><summary>Solution to
  Exercise 2.1</summary>…</details>``; a gated solution (``solution-start`` … ``solution-end``,
  with code cells) is marked by a "Solution to Exercise 2.1" heading before and an
  "End of the solution" line after;
* figure directives and figure code cells (``mystnb.figure`` metadata) get their caption
  with the book's number, "**Fig. 2.3** caption"; images from files are embedded as cell
  attachments (nothing is loaded from elsewhere);
* math stays ``$…$``/``$$…$$``; a bare amsmath environment is wrapped in ``$$``; labels
  ``(name)=`` become ``<a id="name"></a>`` anchors; MyST comments are dropped;
* cell tags: a markdown cell tagged ``remove-cell`` is left out. A code cell is never left
  out (the launch notebook must compute what the chapter computes); ``remove-cell``,
  ``remove-input``, ``hide-input``, ``hide-cell`` collapse its source and ``remove-output``,
  ``hide-output`` its outputs where a frontend can (JupyterLab's ``jupyter.source_hidden`` /
  ``outputs_hidden``; Colab's ``cellView: form``).

Anything the converter does not know (an unknown directive or role, an unresolved label or
glue key) is a Sphinx warning, which fails the ``-W`` build: no MyST syntax reaches a
student silently.

The conversion itself (``convert``) needs only nbformat and a ``References`` object; the tests
build one by hand for a fixture chapter.
"""

from __future__ import annotations

import base64
import copy
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import nbformat

GLUE_PREFIX = "application/papermill.record/"
LAUNCH_DIR = "launch"  # written next to the HTML output folder: _build/launch

# Titles of the admonition directives without an explicit title (as the book shows them).
ADMONITION_TITLES = {
    "note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
    "warning": "Warning", "caution": "Caution", "attention": "Attention", "danger": "Danger",
    "error": "Error", "seealso": "See also", "admonition": "", "versionadded": "New",
    "versionchanged": "Changed", "deprecated": "Deprecated", "margin": "", "sidebar": "",
    "topic": "", "dropdown": "", "epigraph": "", "pull-quote": "", "highlights": "",
}
CODE_DIRECTIVES = {"code", "code-block", "sourcecode", "code-cell"}
DROPPED_DIRECTIVES = {"tableofcontents", "index", "only"}

FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\{(?P<name>[^}\s]+)\}\s*(?P<arg>.*)$")
OPTION = re.compile(r"^\s*:(?P<key>[\w-]+):\s*(?P<value>.*)$")
TARGET = re.compile(r"^\s*\((?P<label>[^()\s]+)\)=\s*$")
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.*?)(?:\s+#+)?\s*$")
ROLE = re.compile(r"\{(?P<name>[A-Za-z][\w:+.-]*)\}(?P<ticks>`+)")
TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>\s*$", re.S)
MARKDOWN_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)(?P<rest>[^)]*)\)")
TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                            "\u2013": "-", "\u2014": "-", "\u00a0": " "})
# A line starting with "2. " or "3) " would become a list item: such a dot is escaped.
LIST_MARKER = re.compile(r"^(\s*)(\d+)([.)](?:\s|$))")
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>$|])")


def escape(text: str) -> str:
    """Plain text (a glued value, a title) safe inside Markdown: no emphasis, link, math."""
    return MD_SPECIAL.sub(r"\\\1", text)


def plain(text: str) -> str:
    """Markdown or a title reduced to comparable plain text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\\(.)", r"\1", text)
    text = re.sub(r"[`*_$]", "", text)
    return " ".join(text.translate(TYPOGRAPHY).split()).casefold()


def published_base_url(repository_url: str, html_baseurl: str = "") -> str:
    """Where the book is published: html_baseurl if set, else GitHub Pages of the repository
    (https://github.com/OWNER/NAME -> https://OWNER.github.io/NAME/)."""
    if html_baseurl:
        return html_baseurl.rstrip("/") + "/"
    parsed = urlparse(repository_url)
    parts = parsed.path.strip("/").removesuffix(".git").split("/")
    if parsed.hostname != "github.com" or len(parts) < 2:
        raise ValueError(f"cannot derive the published URL from {repository_url!r}: set html.baseurl")
    owner, name = parts[0], parts[1]
    if name.lower() == f"{owner.lower()}.github.io":
        return f"https://{owner.lower()}.github.io/"
    return f"https://{owner.lower()}.github.io/{name}/"


# --------------------------------------------------------------------------------------
# What the book knows about labels, numbers and titles
# --------------------------------------------------------------------------------------

@dataclass
class Section:
    anchor: str  # "#overview" ("" for the page title)
    title: str  # plain text, as Sphinx has it
    number: tuple[int, ...]  # () when not numbered


@dataclass
class References:
    """Labels, numbers and titles of a built book (from the Sphinx environment,
    ``References.from_env``), or given by hand (tests)."""

    base_url: str  # ends with "/"
    labels: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # label -> (docname, id, title)
    fignumbers: dict[str, dict[str, dict[str, tuple[int, ...]]]] = field(default_factory=dict)
    sections: dict[str, list[Section]] = field(default_factory=dict)  # docname -> in page order
    titles: dict[str, str] = field(default_factory=dict)  # docname -> page title
    numfig_format: dict[str, str] = field(default_factory=lambda: {
        "section": "Section %s", "figure": "Fig. %s", "table": "Table %s",
        "code-block": "Listing %s", "exercise": "Exercise %s"})
    exercises: dict[str, dict] = field(default_factory=dict)  # label -> {docname, numbered, title}
    equations: dict[str, tuple[str, int]] = field(default_factory=dict)  # label -> (docname, number)
    project: str = ""

    @classmethod
    def from_env(cls, env, base_url: str) -> References:
        from docutils import nodes

        std = env.domaindata["std"]
        labels = {k: (v[0], v[1], v[2]) for k, v in std["labels"].items()}
        for k, (doc, anchor) in std["anonlabels"].items():
            labels.setdefault(k, (doc, anchor, ""))
        sections: dict[str, list[Section]] = {}
        for docname, toc in env.tocs.items():
            numbers = env.toc_secnumbers.get(docname, {})
            sections[docname] = [
                Section(ref["anchorname"], ref.astext(), tuple(numbers.get(ref["anchorname"], ())))
                for ref in toc.findall(nodes.reference) if ref.get("internal")
                and ref.get("refuri") == docname]
        exercises = {}
        for label, entry in getattr(env, "sphinx_exercise_registry", {}).items():
            if entry.get("type") != "exercise":
                continue
            node = entry["node"]
            title_node = node.children[0] if node.children else None
            title = title_node.astext() if title_node is not None else ""
            exercises[label] = {"docname": entry["docname"],
                                "numbered": type(node).__name__ == "exercise_enumerable_node",
                                "title": title}
        equations = {k: (v[0], v[1]) for k, v in env.domaindata.get("math", {}).get("objects", {}).items()}
        return cls(
            base_url=base_url, labels=labels,
            fignumbers={d: {t: dict(ids) for t, ids in f.items()} for d, f in env.toc_fignumbers.items()},
            sections=sections, titles={d: t.astext() for d, t in env.titles.items()},
            numfig_format=dict(env.config.numfig_format or {}), exercises=exercises,
            equations=equations, project=env.config.html_title or env.config.project or "",
        )

    def url(self, docname: str, anchor: str = "") -> str:
        anchor = anchor.lstrip("#")
        return f"{self.base_url}{docname}.html" + (f"#{anchor}" if anchor else "")

    def number(self, label: str) -> tuple[str, str] | None:
        """(figure type, "2.3") of a numbered label."""
        entry = self.labels.get(label)
        docname = entry[0] if entry else self.exercises.get(label, {}).get("docname")
        for figtype, ids in self.fignumbers.get(docname, {}).items():
            if label in ids:
                return figtype, ".".join(map(str, ids[label]))
        if entry:  # a section label: "Section 2.3"
            for section in self.sections.get(docname, []):
                if section.anchor.lstrip("#") == entry[1] and section.number:
                    return "section", ".".join(map(str, section.number))
        return None

    def numbered_title(self, label: str, title: str | None = None) -> str | None:
        found = self.number(label)
        if found is None:
            return None
        figtype, number = found
        template = title or self.numfig_format.get(figtype, "%s")
        caption = self.labels.get(label, ("", "", ""))[2]
        return template.replace("%s", number).replace("{number}", number).replace("{name}", caption)

    def target(self, label: str) -> tuple[str, str] | None:
        if label in self.labels:
            return self.labels[label][0], self.labels[label][1]
        if label in self.exercises:
            return self.exercises[label]["docname"], label
        return None


# --------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------

class ConversionError(ValueError):
    pass


def glue_records(nb) -> dict[str, dict]:
    """{key: {mime: value}} of the glue records stored in a notebook's outputs."""
    found = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if not scrap or "name" not in scrap:
                continue
            prefix = scrap.get("mime_prefix", GLUE_PREFIX)
            found[scrap["name"]] = {k.removeprefix(prefix): v for k, v in output.get("data", {}).items()}
    return found


def is_glue_record(output) -> bool:
    return bool(output.get("metadata", {}).get("scrapbook"))


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def format_plain_text(text: str, fmt_spec: str) -> str:
    """MyST-NB's own formatting of ``{glue:text}`key:fmt``` (myst_nb.core.variables)."""
    try:
        from myst_nb.core.variables import format_plain_text as myst_format
    except ImportError:  # pragma: no cover - the book tools are always there at build time
        from ast import literal_eval

        def myst_format(text: str, fmt_spec: str) -> str:
            try:
                value = literal_eval(text)
            except (SyntaxError, ValueError):
                value = text
            if fmt_spec == "":
                return str(value)
            kind = fmt_spec[-1]
            value = str(value) if kind == "s" else int(value) if kind in "bcdoxX" else \
                float(value) if kind in "eEfFgGn%" else value
            return format(value, fmt_spec)
    return myst_format(text, fmt_spec)


def _closing(lines: list[str], start: int, char: str, length: int) -> int | None:
    for j in range(start, len(lines)):
        s = lines[j].strip()
        if len(s) >= length and set(s) == {char}:
            return j
    return None


def _find_ticks(text: str, start: int, n: int) -> int | None:
    """Index of the next run of exactly n backticks at or after start."""
    i = start
    while True:
        j = text.find("`" * n, i)
        if j < 0:
            return None
        k = j
        while k < len(text) and text[k] == "`":
            k += 1
        if k - j == n:
            return j
        i = k


def _one_line_math(text: str) -> str:
    """Math spans joined onto one line, so that a block-quote prefix cannot enter them."""
    def join(m: re.Match) -> str:
        return " ".join(part.strip() for part in m.group(0).split("\n"))
    text = re.sub(r"\$\$.*?\$\$", join, text, flags=re.S)
    return re.sub(r"(?<![\\$])\$(?!\$)[^$]+?(?<![\\$])\$", join, text, flags=re.S)


def blockquote(text: str) -> str:
    lines = _one_line_math(text.strip("\n")).split("\n")
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines)


class Converter:
    """Converts one chapter notebook. ``warn(message)`` is called for everything that
    cannot be rendered faithfully (a Sphinx warning at build time)."""

    def __init__(self, refs: References, docname: str, source: Path,
                 warn: Callable[[str], None] | None = None) -> None:
        self.refs = refs
        self.docname = docname
        self.source = Path(source)
        self.warnings: list[str] = []
        self._warn = warn
        self.glue: dict[str, dict] = {}
        self.level = 1  # level of the last heading: exercises are headed one below it
        self.sections = list(refs.sections.get(docname, []))
        self.attachments: dict[str, dict] = {}
        self.open_solution: str | None = None
        self.images = 0

    # -- helpers ---------------------------------------------------------------------
    def warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._warn:
            self._warn(message)

    def link(self, text: str, docname: str, anchor: str = "") -> str:
        return f"[{text}]({self.refs.url(docname, anchor)})"

    def exercise_name(self, label: str) -> str:
        info = self.refs.exercises.get(label)
        if info is None:
            self.warn(f"unknown exercise label {label!r}")
            return "Exercise"
        if info["numbered"]:
            return self.refs.numbered_title(label) or "Exercise"
        return info["title"] or "Exercise"

    def attach(self, name: str, mime: str, data: str) -> str:
        """Add an attachment to the current cell; returns its attachment: URL."""
        self.images += 1
        key = re.sub(r"[^\w.-]", "_", name)
        self.attachments[key] = {mime: data}
        return f"attachment:{key}"

    def embed_file(self, src: str, alt: str) -> str:
        path = (self.source.parent / src).resolve()
        if urlparse(src).scheme or not path.is_file():
            if not urlparse(src).scheme:
                self.warn(f"image {src!r} not found")
            return f"![{alt}]({src})"
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if mime == "image/svg+xml":
            data = path.read_text(encoding="utf-8")
        else:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"![{alt}]({self.attach(path.name, mime, data)})"

    # -- glue ------------------------------------------------------------------------
    def glue_data(self, key: str) -> dict | None:
        docpath, _, name = key.rpartition("::")
        records = self.glue
        if docpath:
            other = (self.source.parent / docpath)
            other = other if other.suffix else other.with_suffix(".ipynb")
            if not other.is_file():
                self.warn(f"glue: no notebook {docpath!r} for {key!r}")
                return None
            records = glue_records(nbformat.read(other, as_version=4))
        if name not in records:
            self.warn(f"glue: no stored value {name!r} (run the chapter: make notebooks)")
            return None
        return records[name]

    def glue_text(self, content: str) -> str:
        key, sep, fmt = content.rpartition(":")
        if not sep or ("::" in content and ":" not in content.rsplit("::", 1)[1]):
            key, fmt = content, "s"
        data = self.glue_data(key)
        if data is None:
            return escape(content)
        if "text/plain" not in data:
            self.warn(f"glue: {key!r} has no text/plain value")
            return escape(content)
        return escape(format_plain_text(_text(data["text/plain"]), fmt))

    def glue_output(self, key: str, inline: bool) -> str:
        """A glued value rendered as its best stored representation."""
        data = self.glue_data(key)
        if data is None:
            return escape(key)
        name = key.rpartition("::")[2]
        for mime in ("image/png", "image/jpeg", "image/gif", "image/svg+xml"):
            if mime in data:
                ext = mimetypes.guess_extension(mime) or ".img"
                return f"![{escape(name)}]({self.attach(name + ext, mime, _text(data[mime]))})"
        if "text/html" in data:
            html = _text(data["text/html"]).strip()
            return html if inline else f"\n{html}\n"
        if "text/markdown" in data:
            return _text(data["text/markdown"])
        if "text/latex" in data:
            latex = _text(data["text/latex"]).strip()
            return latex if latex.startswith("$") else f"${latex}$"
        if "text/plain" in data:
            text = _text(data["text/plain"])
            return escape(format_plain_text(text, "")) if inline else f"```\n{text}\n```"
        self.warn(f"glue: {key!r} has no displayable value")
        return escape(key)

    # -- inline ----------------------------------------------------------------------
    def inline(self, text: str) -> str:
        out, i = [], 0
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                out.append(text[i:i + 2])
                i += 2
                continue
            if c == "`":
                n = len(text[i:]) - len(text[i:].lstrip("`"))
                j = _find_ticks(text, i + n, n)
                if j is None:
                    out.append(text[i:i + n])
                    i += n
                else:
                    out.append(text[i:j + n])
                    i = j + n
                continue
            if c == "{":
                m = ROLE.match(text, i)
                if m:
                    n = len(m["ticks"])
                    j = _find_ticks(text, m.end(), n)
                    if j is not None:
                        out.append(self.role(m["name"], text[m.end():j]))
                        i = j + n
                        continue
            if c == "!" and text.startswith("![", i):
                m = MARKDOWN_IMAGE.match(text, i)
                if m and not urlparse(m["src"]).scheme and not m["src"].startswith("attachment:"):
                    out.append(self.embed_file(m["src"], m["alt"]))
                    i = m.end()
                    continue
            out.append(c)
            i += 1
        return "".join(out)

    def role(self, name: str, content: str) -> str:
        titled = TITLED.match(content)
        title, target = (titled["title"].strip() or None, titled["target"].strip()) if titled else (None, content.strip())
        if name in ("glue:text",):
            return self.glue_text(content.strip())
        if name in ("glue", "glue:any"):
            return self.glue_output(content.strip(), inline=True)
        if name == "glue:md":
            key = content.strip().rsplit(":", 1)[0] if content.count(":") and "::" not in content else content.strip()
            data = self.glue_data(key)
            return _text(data.get("text/markdown", "")) if data else escape(key)
        if name == "glue:math":
            return self.glue_output(content.strip(), inline=True)
        if name == "numref":
            text = self.refs.numbered_title(target, title)
            where = self.refs.target(target)
            if text is None or where is None:
                self.warn(f"numref: no number for {target!r}")
                return escape(title or target)
            return self.link(escape(text), *where)
        if name == "ref":
            where = self.refs.target(target)
            if where is None:
                self.warn(f"ref: unknown label {target!r}")
                return escape(title or target)
            if title:
                text = title
            elif target in self.refs.exercises:
                text = self.exercise_name(target)
            else:
                text = self.refs.labels[target][2]
                if not text:
                    self.warn(f"ref: label {target!r} has no title; give one: {{ref}}`text <{target}>`")
                    text = target
            return self.link(escape(text), *where)
        if name == "doc":
            base = PurePosixPath(self.docname).parent
            path = target.lstrip("/") if target.startswith("/") else str(base / target)
            path = str(PurePosixPath(*[p for p in PurePosixPath(path).parts if p != "."]))
            while "/../" in f"/{path}/":  # resolve a/b/../c
                path = re.sub(r"[^/]+/\.\./", "", path, count=1)
            path = re.sub(r"\.(ipynb|md)$", "", path)
            if path not in self.refs.titles:
                self.warn(f"doc: unknown page {target!r}")
                return escape(title or target)
            return self.link(escape(title or self.refs.titles[path]), path)
        if name == "eq":
            entry = self.refs.equations.get(target)
            if entry is None:
                self.warn(f"eq: unknown equation {target!r}")
                return escape(target)
            return self.link(f"({entry[1]})", entry[0], f"equation-{target}")
        if name == "math":
            return f"${content}$"
        if name in ("code", "literal", "samp", "file", "command", "kbd"):
            ticks = "``" if "`" in content else "`"
            return f"{ticks}{content}{ticks}"
        if name in ("sub", "subscript"):
            return f"<sub>{content}</sub>"
        if name in ("sup", "superscript"):
            return f"<sup>{content}</sup>"
        if name in ("abbr", "term", "dfn", "guilabel", "menuselection", "emphasis"):
            text = re.sub(r"\s*\(.*\)$", "", content) if name == "abbr" else (title or target)
            return f"*{text}*" if name == "emphasis" else text
        if name == "strong":
            return f"**{content}**"
        self.warn(f"role {{{name}}} is not converted: its content is shown as text")
        return escape(title or target)

    # -- blocks ----------------------------------------------------------------------
    def heading(self, hashes: str, text: str, top: bool) -> str:
        level = len(hashes)
        rendered = self.inline(text)
        if not top:
            return f"{hashes} {rendered}"
        self.level = level
        wanted = plain(rendered)
        for k, section in enumerate(self.sections):
            if plain(section.title) == wanted:
                del self.sections[:k + 1]
                if section.number:
                    return f"{hashes} {'.'.join(map(str, section.number))}. {rendered}"
                return f"{hashes} {rendered}"
        if self.refs.sections.get(self.docname):
            self.warn(f"heading {text!r} not found among the page's sections: no section number")
        return f"{hashes} {rendered}"

    def markdown(self, text: str, top: bool = True) -> str:
        """MyST markdown -> Jupyter markdown. ``top``: not inside a directive."""
        lines = text.split("\n")
        out: list[str] = []
        para: list[str] = []

        def flush() -> None:
            if para:
                converted = self.inline("\n".join(para)).split("\n")
                if len(converted) == len(para):  # a value pasted at a line start: "2. Keep DC"
                    converted = [LIST_MARKER.sub(r"\1\2\\\3", new) if old.lstrip().startswith("{") else new
                                 for old, new in zip(para, converted, strict=True)]
                out.append("\n".join(converted))
                para.clear()

        i = 0
        while i < len(lines):
            line = lines[i]
            fence = FENCE.match(line)
            if fence and not (fence["fence"][0] == "`" and "`" in fence["info"]):
                flush()
                indent = fence["indent"]
                char, n = fence["fence"][0], len(fence["fence"])
                end = _closing(lines, i + 1, char, n)
                last = len(lines) if end is None else end
                body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1:last]]
                directive = DIRECTIVE.match(fence["info"].strip())
                if directive:
                    rendered = self.directive(directive["name"], directive["arg"].strip(), body)
                    out.append("\n".join(indent + ln if ln else ln for ln in rendered.split("\n")))
                else:
                    out.extend(lines[i:last + 1] if end is not None else lines[i:])
                i = last + 1
                continue
            target = TARGET.match(line)
            if target:
                flush()
                out.append(f'<a id="{target["label"]}"></a>')
                i += 1
                continue
            if re.match(r"^\s*%", line) or line.strip() == "+++":  # MyST comment, block break
                flush()
                i += 1
                continue
            heading = HEADING.match(line)
            if heading:
                flush()
                out.append(self.heading(heading["hashes"], heading["text"], top))
                i += 1
                continue
            stripped = line.strip()
            if stripped.startswith("$$"):
                flush()
                j = i if stripped.endswith("$$") and len(stripped) > 2 and stripped.count("$$") >= 2 else \
                    next((k for k in range(i + 1, len(lines)) if "$$" in lines[k]), None)
                if j is None:
                    self.warn("display math opened with $$ is never closed")
                    out.extend(lines[i:])
                    break
                block = lines[i:j + 1]
                closing = block[-1]
                label = re.search(r"\$\$\s*\((?P<label>[^)]+)\)\s*$", closing)
                if label:
                    block[-1] = closing[:label.start()] + "$$"
                    out.append(f'<a id="equation-{label["label"]}"></a>')
                out.extend(block)
                i = j + 1
                continue
            begin = re.match(r"^\s*\\begin\{(?P<env>[\w*]+)\}", line)
            if begin and not para:
                env = begin["env"]
                j = next((k for k in range(i, len(lines)) if f"\\end{{{env}}}" in lines[k]), None)
                if j is not None:
                    out.extend(["$$", *lines[i:j + 1], "$$"])
                    i = j + 1
                    continue
            para.append(line)
            i += 1
        flush()
        return "\n".join(out)

    def directive(self, name: str, arg: str, body: list[str]) -> str:
        options: dict[str, str] = {}
        k = 0
        if body and body[0].strip() == "---":  # YAML options block
            end = next((j for j in range(1, len(body)) if body[j].strip() == "---"), None)
            if end is not None:
                import yaml

                options = {str(key): str(value) for key, value in (yaml.safe_load("\n".join(body[1:end])) or {}).items()}
                k = end + 1
        while k < len(body):
            m = OPTION.match(body[k])
            if not m:
                break
            options[m["key"]] = m["value"].strip()
            k += 1
        content = "\n".join(body[k:]).strip("\n")

        if name in CODE_DIRECTIVES:
            language = arg or options.get("language", "")
            return f"```{language}\n{content}\n```"
        if name == "math":
            anchor = f'<a id="equation-{options["label"]}"></a>\n' if "label" in options else ""
            return f"{anchor}$$\n{content}\n$$"
        if name == "raw":
            if arg.strip().lower() == "html":
                return content
            self.warn(f"raw {arg!r} content left out")
            return ""
        if name in DROPPED_DIRECTIVES:
            return ""
        if name in ("exercise", "exercise-start"):
            label = options.get("label", "")
            heading = self.exercise_name(label) if label else "Exercise"
            if arg:
                heading = f"{heading} ({self.inline(arg)})" if label and self.refs.exercises.get(label, {}).get("numbered") else self.inline(arg)
            hashes = "#" * min(self.level + 1, 6)
            anchor = f'<a id="{label}"></a>\n\n' if label else ""
            return f"{anchor}{hashes} {heading}\n\n{self.markdown(content, top=False)}".rstrip()
        if name == "exercise-end":
            return ""
        if name == "solution":
            inner = self.markdown(content, top=False)
            summary = f"Solution to {self.exercise_name(arg)}" if arg else "Solution"
            return f"<details>\n<summary>{summary}</summary>\n\n{inner}\n\n</details>"
        if name == "solution-start":
            if self.open_solution is not None:
                self.warn(f"solution-start {arg!r} inside the open solution {self.open_solution!r}")
            self.open_solution = arg
            hashes = "#" * min(self.level + 2, 6)
            text = f"{hashes} Solution to {self.exercise_name(arg)}"
            return text + ("\n\n" + self.markdown(content, top=False) if content else "")
        if name == "solution-end":
            if self.open_solution is None:
                self.warn("solution-end without solution-start")
                return ""
            name_ = self.exercise_name(self.open_solution)
            self.open_solution = None
            return f"*End of the solution to {name_}.*\n\n---"
        if name in ("figure", "image"):
            alt = options.get("alt", "")
            image = self.embed_file(arg, alt)
            if name == "image":
                return image
            label = options.get("name", "")
            caption, _, legend = content.partition("\n\n")
            number = self.refs.numbered_title(label) if label else None
            if label and number is None:
                self.warn(f"figure {label!r} has no number")
            anchor = f'<a id="{label}"></a>\n\n' if label else ""
            head = f"**{escape(number)}** " if number else ""
            text = f"{anchor}{image}\n\n{head}{self.inline(caption)}".rstrip()
            return text + (f"\n\n{self.markdown(legend, top=False)}" if legend.strip() else "")
        if name in ("glue", "glue:any", "glue:figure", "glue:math", "glue:md"):
            key = arg
            if name == "glue:md":
                data = self.glue_data(key)
                return _text(data.get("text/markdown", "")) if data else ""
            value = self.glue_output(key, inline=False)
            if name == "glue:math" and not value.lstrip().startswith("$"):
                value = f"$${value.strip().strip('$')}$$"
            label = options.get("name", "")
            if name != "glue:figure" or not (label or content):
                return value
            number = self.refs.numbered_title(label) if label else None
            if label and number is None:
                self.warn(f"glued figure {label!r} has no number")
            anchor = f'<a id="{label}"></a>\n\n' if label else ""
            head = f"**{escape(number)}** " if number else ""
            return f"{anchor}{value}\n\n{head}{self.inline(content)}".rstrip()
        if name in ADMONITION_TITLES:
            title = self.inline(arg) if name in ("admonition", "dropdown", "topic", "sidebar", "margin") else ADMONITION_TITLES[name]
            if arg and name not in ("admonition", "dropdown", "topic", "sidebar", "margin"):
                content = f"{arg}\n{content}" if content else arg  # the argument is the first line
            inner = self.markdown(content, top=False)
            if name == "dropdown":
                return f"<details>\n<summary>{title or 'Details'}</summary>\n\n{inner}\n\n</details>"
            return blockquote(f"**{title}**\n\n{inner}" if title else inner)
        self.warn(f"directive {{{name}}} is not converted: its content is shown as a block quote")
        return blockquote(f"**{self.inline(arg)}**\n\n{self.markdown(content, top=False)}" if arg
                          else self.markdown(content, top=False))

    # -- cells -----------------------------------------------------------------------
    def convert(self, nb) -> nbformat.NotebookNode:
        nb = nbformat.from_dict(copy.deepcopy(nb))
        self.glue = glue_records(nb)
        cells = []
        folds: list[tuple[int, int]] = []  # (solution heading cell, end cell) of gated solutions
        solution_start: int | None = None
        for index, cell in enumerate(nb.cells):
            tags = set(cell.get("metadata", {}).get("tags", []))
            cell_id = cell.get("id") or f"cell-{index}"
            if cell.cell_type == "markdown":
                if "remove-cell" in tags:
                    continue
                self.attachments = dict(cell.get("attachments", {}))
                before = self.open_solution
                cell.source = self.markdown(_text(cell.source)).strip("\n")
                if self.attachments:
                    cell["attachments"] = self.attachments
                if before is None and self.open_solution is not None and cell.source.startswith("#"):
                    solution_start = len(cells)
                elif before is not None and self.open_solution is None and solution_start is not None:
                    folds.append((solution_start, len(cells)))
                    solution_start = None
                cells.append(cell)
                if len(cells) == 1 and self.refs.base_url:
                    cells.append(self._banner(cell_id))
                continue
            if cell.cell_type != "code":
                cells.append(cell)
                continue
            cell.outputs = [o for o in cell.get("outputs", []) if not is_glue_record(o)]
            meta = cell.setdefault("metadata", {})
            if tags & {"remove-cell", "remove-input", "hide-input", "hide-cell"}:
                meta.setdefault("jupyter", {})["source_hidden"] = True
                meta["cellView"] = "form"  # Colab: code hidden behind the form view
            if tags & {"remove-cell", "remove-output", "hide-output", "hide-cell"} and cell.outputs:
                meta.setdefault("jupyter", {})["outputs_hidden"] = True
            cells.append(cell)
            figure = meta.get("mystnb", {}).get("figure") or meta.get("myst", {}).get("figure")
            if figure and figure.get("caption"):
                cells.append(self._caption(cell_id, figure))
        if self.open_solution is not None:
            self.warn(f"solution-start {self.open_solution!r} is never closed")
        for start, end in folds:
            # Fold the solution in JupyterLab (a collapsed heading hides the cells under it up
            # to the next heading of its level), as the book folds it in a dropdown; only when
            # the next cell after the solution starts such a heading, so no prose is hidden.
            level = len(cells[start].source) - len(cells[start].source.lstrip("#"))
            after = cells[end + 1] if end + 1 < len(cells) else None
            first = re.sub(r'^(\s*<a id="[^"]*"></a>\s*)+', "", after.source).split("\n", 1)[0] \
                if after is not None and after.cell_type == "markdown" else ""
            heading = HEADING.match(first)
            if after is None or (heading and len(heading["hashes"]) <= level):
                cells[start].metadata["jp-MarkdownHeadingCollapsed"] = True
        nb.cells = cells
        nb.metadata["launch_notebook"] = {
            "source": self.source.name,
            "page": self.refs.url(self.docname) if self.refs.base_url else "",
            "note": "Generated from the book's chapter by _ext/launch_notebooks.py; edit the chapter, not this file.",
        }
        return nb

    def _caption(self, cell_id: str, figure: dict) -> nbformat.NotebookNode:
        label = figure.get("name", "")
        number = self.refs.numbered_title(label) if label else None
        if label and number is None:
            self.warn(f"figure {label!r} has no number")
        self.attachments = {}
        anchor = f'<a id="{label}"></a>\n\n' if label else ""
        head = f"**{escape(number)}** " if number else ""
        cell = nbformat.v4.new_markdown_cell(f"{anchor}{head}{self.inline(figure['caption'])}".rstrip())
        cell["id"] = f"{cell_id}-caption"[:64]
        return cell

    def _banner(self, cell_id: str) -> nbformat.NotebookNode:
        project = escape(self.refs.project) if self.refs.project else "the book"
        text = (f"*This notebook is a chapter of {project}. It reads as the "
                f"[web page]({self.refs.url(self.docname)}) does, with the same numbers; run the cells "
                "from the top to compute them yourself.*")
        cell = nbformat.v4.new_markdown_cell(text)
        cell["id"] = f"{cell_id}-launch"[:64]
        return cell


def convert(nb, refs: References, docname: str, source: Path,
            warn: Callable[[str], None] | None = None) -> tuple[nbformat.NotebookNode, list[str]]:
    """The launch notebook of a chapter, and the warnings of the conversion."""
    converter = Converter(refs, docname, source, warn)
    return converter.convert(nb), converter.warnings


# --------------------------------------------------------------------------------------
# Sphinx glue
# --------------------------------------------------------------------------------------

def _base_url(app) -> str:
    theme = app.config.html_theme_options or {}
    return published_base_url(theme.get("repository_url", ""), app.config.html_baseurl or "")


def write_launch_notebooks(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    refs = References.from_env(app.env, _base_url(app))
    outdir = Path(app.outdir)
    launch = outdir.parent / LAUNCH_DIR
    written = 0
    for docname in sorted(app.env.found_docs):
        source = Path(app.env.doc2path(docname))
        if source.suffix != ".ipynb":
            continue
        nb = nbformat.read(source, as_version=4)
        launch_nb, _ = convert(nb, refs, docname, source,
                               warn=lambda msg, d=docname: logger.warning(f"launch notebook: {msg}", location=d))
        text = nbformat.writes(launch_nb) + "\n"
        target = launch / f"{docname}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        download = outdir / "_sources" / f"{docname}.ipynb"  # behind the download button
        if download.is_file():
            download.write_text(text, encoding="utf-8")
        written += 1
    logger.info(f"launch notebooks: {written} written to {launch}")


def setup(app):
    app.connect("build-finished", write_launch_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
