#!/usr/bin/env python3
"""manpage.py README.md VERSION > pgstream.1 — the man page, generated from
the README's configuration reference (the option table and the exit status
paragraph under it) and its opening description, so the two never disagree.
The build runs it (CMakeLists.txt); tests/integration/test_install.py checks
that the page names every option pgstream --help lists."""

import re
import sys


def inline(text):
    """Markdown inline text -> roff: `code` bold, links to their text,
    escapes for backslashes and dashes."""
    text = text.replace("\\|", "|")
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    text = text.replace("\\", "\\e")
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) >= 2:
            out.append("\\fB" + p[1:-1].replace("-", "\\-") + "\\fR")
        else:
            out.append(re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", p))
    return "".join(out)


def line(text):
    """A text line that roff will not read as a request."""
    text = inline(text)
    return "\\&" + text if text.startswith((".", "'")) else text


def section(md, title):
    m = re.search(r"^#+ %s\n(.*?)(?=^#+ )" % re.escape(title), md, re.S | re.M)
    if not m:
        sys.exit("manpage: no section %r in the README" % title)
    return m.group(1)


def main():
    md = open(sys.argv[1], encoding="utf-8").read()
    version = sys.argv[2] if len(sys.argv) > 2 else ""
    ref = section(md, "Configuration reference")
    rows = [l for l in ref.splitlines() if l.startswith("| `")]
    after = ref.split("\n\n")
    status = next((p for p in after if p.startswith("Exit status")), None)
    if not rows or status is None:
        sys.exit("manpage: the configuration reference has no table or no exit status")
    intro = next(p for p in md.split("\n\n") if p.startswith("pgstream is a"))
    print('.TH PGSTREAM 1 "" "pgstream %s" "User Commands"' % version)
    print(".SH NAME\npgstream \\- PostgreSQL change data capture daemon")
    print(".SH SYNOPSIS\n.B pgstream\n[\\fIOPTIONS\\fR]")
    print(".SH DESCRIPTION")
    print(line(" ".join(intro.split())))
    print(".PP\nSettings come from flags, then the environment, then a \\fB.env\\fR file; "
          "a flag wins over the environment, which wins over the file.")
    print(".SH OPTIONS")
    for r in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]]
        flag, env, default, meaning = (cells + ["", "", "", ""])[:4]
        print(".TP\n" + line(flag))
        print(line(meaning[:1].upper() + meaning[1:] + "." if meaning else ""))
        extra = []
        if env:
            extra.append("Environment: " + env)
        if default:
            extra.append("default: " + default)
        if extra:
            print(".br\n" + line("; ".join(extra) + "."))
    print(".SH EXIT STATUS")
    print(line(" ".join(status.split())))
    print(".SH SIGNALS\n.TP\n\\fBSIGTERM\\fR, \\fBSIGINT\\fR\n"
          "Write out and acknowledge what was received, then exit 0.\n"
          ".TP\n\\fBSIGHUP\\fR\nReopen the \\fB\\-\\-output\\fR file (after logrotate moved it); "
          "the old file ends with every event before the signal. With \\fB\\-\\-rotate\\-bytes\\fR "
          "or \\fB\\-\\-rotate\\-seconds\\fR: close the current file; the next event starts a "
          "new one.")
    print(".SH SEE ALSO\nThe README of the source tree, which this page is generated from, "
          "describes the event format, the guarantees and the metrics.")


if __name__ == "__main__":
    main()
