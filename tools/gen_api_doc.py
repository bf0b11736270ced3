#!/usr/bin/env python3
"""Generate docs/api.md, the C API reference, from the doc comments in include/mpx/*.h.

    python3 tools/gen_api_doc.py            # rewrite docs/api.md
    python3 tools/gen_api_doc.py --check    # exit 1 if docs/api.md is out of date
    python3 tools/gen_api_doc.py --strict   # also exit 1 if a declaration has no doc comment
    python3 tools/gen_api_doc.py --stdout   # print instead of writing

The headers are read in the order mpx/mpx.h includes them and rendered in source order:
a section comment `/* ---- Title ---- */` becomes a heading, a `/** ... */` comment documents
the declaration right after it, a trailing `/**< ... */` documents its own line. A function
without a doc comment gets a description derived from the naming conventions, marked with a
dagger, and a warning on stderr. Standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "include" / "mpx"
OUTPUT = ROOT / "docs" / "api.md"

DAGGER = "†"


@dataclass
class Item:
    kind: str  # "heading" | "note" | "defines" | "struct" | "opaque" | "function"
    text: str = ""
    doc: str = ""
    name: str = ""
    rows: list = field(default_factory=list)  # defines: (name, value, doc)
    derived: bool = False


# ---- parsing ------------------------------------------------------------------------------


def clean_comment(raw: str) -> str:
    """The text of a /* */ comment: markers and leading stars gone, paragraphs kept."""
    body = re.sub(r"^/\*+<?", "", raw.strip())
    body = re.sub(r"\*+/$", "", body)
    lines = [re.sub(r"^\s*\* ?", "", ln).rstrip() for ln in body.splitlines()]
    paras, cur = [], []
    for ln in lines:
        if ln.strip():
            cur.append(ln.strip())
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return "\n\n".join(paras).strip()


def strip_line_comment(line: str) -> tuple[str, str]:
    m = re.search(r"/\*\*<(.*?)\*/", line)
    if not m:
        return line, ""
    return line[: m.start()] + line[m.end():], m.group(1).strip()


TOKEN = re.compile(
    r"""(?P<comment>/\*.*?\*/)
      | (?P<preproc>^[ \t]*\#[^\n]*)
      | (?P<blank>\n[ \t]*\n)
      | (?P<struct>typedef\s+struct\s+\w+\s*\{.*?\}\s*\w+\s*;)
      | (?P<extern>extern\s+"C"\s*\{|^\}[ \t]*$)
      | (?P<decl>(?:MPX_API|typedef)\b[^;]*;)
      | (?P<other>\S)""",
    re.S | re.M | re.X,
)


def parse_header(path: Path) -> tuple[str, list[Item]]:
    """The header's introduction and its items in source order."""
    intro = ""
    items: list[Item] = []
    pending = ""  # the last /** */ comment, waiting for its declaration
    run_open = False  # inside a run of #defines (no blank line since the last one)
    run_doc_used = False
    for m in TOKEN.finditer(path.read_text()):
        kind, tok = m.lastgroup, m.group()
        if kind == "blank":
            run_open = False
            continue
        if kind == "comment":
            if not intro:
                intro = re.sub(r"^mpx/\w+\.h\s*-\s*", "", clean_comment(tok))
                intro = intro[:1].upper() + intro[1:]
            elif tok.startswith("/**"):
                pending, run_doc_used = clean_comment(tok), False
            elif h := re.match(r"/\*\s*-{2,}\s*(.*?)\s*-{2,}\s*\*/", tok):
                items.append(Item("heading", text=h.group(1)))
                run_open = False
            else:
                items.append(Item("note", text=clean_comment(tok)))
                run_open = False
            continue
        if kind == "preproc":
            code, trailing = strip_line_comment(tok)
            d = re.match(r"#\s*define\s+(MPX_\w+)\s*(.*)$", code.strip())
            if not d or d.group(1).endswith("_H") or d.group(1) == "MPX_API":
                continue
            doc = trailing
            if not doc and pending and not run_doc_used:
                doc, run_doc_used = pending, True  # one doc comment covers the run after it
                pending = ""
            if not (run_open and items and items[-1].kind == "defines"):
                items.append(Item("defines"))
            items[-1].rows.append((d.group(1), d.group(2).strip(), doc))
            run_open = True
            continue
        run_open = False
        if kind == "struct":
            name = re.search(r"}\s*(\w+)\s*;", tok).group(1)
            items.append(Item("struct", name=name, text=tok.strip(), doc=pending))
            pending = ""
        elif kind == "decl":
            one = " ".join(tok.split())
            if o := re.match(r"typedef struct (\w+) (\w+);", one):
                items.append(Item("opaque", name=o.group(2), doc=pending))
            elif one.startswith("MPX_API"):
                sig = re.sub(r"\s+\)", ")", re.sub(r"\(\s+", "(", one[len("MPX_API"):].strip()))
                name = re.search(r"(mpx_\w+)\s*\(", sig).group(1)
                items.append(Item("function", name=name, text=sig, doc=pending))
            pending = ""
    return intro, items


# ---- descriptions derived from the conventions, for declarations without a doc comment ------


def derive(sig: str, name: str) -> str:
    m = re.match(r"mpx_(\w+?)_options_init$", name)
    if m:
        return (f"Fill opts with the defaults of mpx_{m.group(1)}_options. struct_size is "
                f"sizeof(mpx_{m.group(1)}_options) as the caller knows it.")
    m = re.match(r"mpx_(\w+?)_(attach|destroy|token|create)$", name)
    obj = m.group(1) if m else name.split("_")[1]
    if m and m.group(2) == "attach":
        return f"Attach the {obj} a token names (from mpx_{obj}_token); a wrong or corrupt token is an error."
    if m and m.group(2) == "destroy":
        return f"Close this handle (NULL-safe). The {obj} itself lives on while other handles or processes use it."
    if m and m.group(2) == "token":
        return f"Token naming this {obj}; *len in/out as for mpx_segment_name."
    params = re.search(r"\((.*)\)", sig).group(1).split(",")
    if len(params) == 2:
        pm = re.match(r"\s*(?:const\s+)?(\w+)\s*\*\s*(\w+)\s*$", params[1])
        if pm:
            ptype, pname = pm.groups()
            if ptype == "int":
                what = pname[3:] if pname.startswith("is_") else pname
                return f"*{pname} = 1 if the {obj} is {what.replace('_', ' ')}, else 0."
            return f"*{pname} = the {obj}'s {pname.replace('_', ' ')}."
    verb = name.split("_", 2)[2] if name.count("_") >= 2 else name
    return {
        "clear": f"Reset the {obj}'s flag: later waits block until the next set.",
        "release": f"Release the {obj}'s underlying lock (same results as mpx_lock_release).",
        "notify_all": f"Wake every waiter of the {obj}. The caller must hold the lock (MPX_EPERM otherwise).",
        "create": f"Create {'an' if obj[0] in 'aeiou' else 'a'} {obj}"
        + (f" for `{params[1].split()[-1]}`." if len(params) == 2 else "."),
        "wait_ex": f"As mpx_{obj}_wait, with flags (MPX_{obj.upper()}_HOLD).",
    }.get(verb, "")


# ---- rendering ----------------------------------------------------------------------------


def md_prose(s: str) -> str:
    """C comment prose to Markdown: identifiers and *out-params in backticks, other * escaped."""
    out = []
    for tok in re.split(r"(`[^`]*`)", s):
        if tok.startswith("`"):
            out.append(tok)
            continue
        tok = re.sub(r"(?<![\w`])(\*?(?:mpx|MPX)_\w+\*?(?:\.\w+)?(?:\(\))?|\*[a-z_]+\b)", r"`\1`", tok)
        parts = re.split(r"(`[^`]*`)", tok)
        parts = [p if p.startswith("`") else p.replace("*", r"\*").replace("<", "&lt;") for p in parts]
        out.append("".join(parts))
    return "".join(out)


def anchor(title: str) -> str:
    a = title.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def render(headers: list[tuple[str, str, list[Item]]]) -> tuple[str, list[str]]:
    missing: list[str] = []
    out = [
        "# mpx C API reference",
        "",
        "<!-- Generated by tools/gen_api_doc.py from include/mpx/*.h: do not edit by hand. -->",
        "",
        "Generated from the doc comments in `include/mpx/*.h` by `python3 tools/gen_api_doc.py`",
        "(`--check` fails when this page is stale). The rules every function follows (return codes,",
        "timeouts, options structs, handles, tokens) are in [conventions.md](conventions.md);",
        "the guides are [segments.md](segments.md), [values.md](values.md) and [sync.md](sync.md).",
        "",
    ]
    nfun = sum(1 for _, _, items in headers for i in items if i.kind == "function")
    out.append(f"{nfun} functions in {len(headers)} headers, all included by `#include <mpx/mpx.h>`:")
    out.append("")
    for hname, _, items in headers:
        funcs = [i.name for i in items if i.kind == "function"]
        out.append(f"- [`mpx/{hname}`](#{anchor('mpx/' + hname)}): " + ", ".join(f"[`{f}`](#{f})" for f in funcs))
    out.append("")
    derived_any = False
    for hname, intro, items in headers:
        out += [f"## mpx/{hname}", "", md_prose(intro), ""]
        i = 0
        while i < len(items):
            it = items[i]
            if it.kind == "heading":
                out += [f"### {it.text}", ""]
            elif it.kind == "note":
                out += [md_prose(it.text), ""]
            elif it.kind == "defines":
                if it.rows:
                    out += ["| constant | value | meaning |", "|---|---|---|"]
                    for name, value, doc in it.rows:
                        v = value.replace("|", r"\|")
                        out.append(f"| `{name}` | `{v}` | {md_prose(doc).replace('|', chr(92) + '|')} |")
                    out.append("")
            elif it.kind == "opaque":
                out += [f"`{it.name}`: opaque handle." + (" " + md_prose(it.doc) if it.doc else ""), ""]
            elif it.kind == "struct":
                if it.doc:
                    out += [md_prose(it.doc), ""]
                out += ["```c", it.text, "```", ""]
            elif it.kind == "function":
                doc = it.doc
                mark = ""
                if not doc:
                    missing.append(it.name)
                    doc = derive(it.text, it.name)
                    mark = f" {DAGGER}"
                    derived_any = True
                out += [f"#### {it.name}", "", "```c", it.text, "```", "", md_prose(doc) + mark, ""]
            i += 1
    if derived_any:
        out += [
            "---",
            "",
            f"{DAGGER} The header has no doc comment for this function yet; the description is derived",
            "from the naming conventions by tools/gen_api_doc.py.",
            "",
        ]
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
    return text, missing


def header_order() -> list[str]:
    umbrella = (INCLUDE / "mpx.h").read_text()
    names = re.findall(r'#include\s+"mpx/(\w+\.h)"', umbrella)
    rest = sorted(p.name for p in INCLUDE.glob("*.h") if p.name not in names and p.name != "mpx.h")
    return names + rest


def generate() -> tuple[str, list[str]]:
    headers = []
    for h in header_order():
        intro, items = parse_header(INCLUDE / h)
        headers.append((h, intro, items))
    return render(headers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is out of date")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a function has no doc comment")
    ap.add_argument("--stdout", action="store_true", help="print the page instead of writing it")
    ap.add_argument("--output", type=Path, default=OUTPUT)
    args = ap.parse_args()

    text, missing = generate()
    status = 0
    if missing:
        print(f"gen_api_doc: {len(missing)} function(s) without a doc comment: " + ", ".join(missing),
              file=sys.stderr)
        if args.strict:
            status = 1
    if args.stdout:
        sys.stdout.write(text)
        return status
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(args.output), "generated",
                                        lineterm="", n=1)
            sys.stderr.write("\n".join(list(diff)[:60]) + "\n")
            print(f"gen_api_doc: {args.output} is out of date: run python3 tools/gen_api_doc.py", file=sys.stderr)
            return 1
        return status
    args.output.write_text(text)
    print(f"gen_api_doc: wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
