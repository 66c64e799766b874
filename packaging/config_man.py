#!/usr/bin/env python3
"""Writes shredd.toml(5) from docs/CONFIG.md's key tables, the one reference
of the config keys (tests/integration/test_cli_manual.py checks that the page
lists exactly the keys the daemon's parser knows).

Usage: config_man.py docs/CONFIG.md VERSION > shredd.toml.5
"""
import re
import sys

LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def roff(text):
    text = LINK.sub(r"\1", text).replace("**", "").replace("\\|", "|")
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]*)`", r"\\fB\1\\fR", text)
    text = text.replace("`", "")
    return "\\&" + text if text.startswith((".", "'")) else text


def cells(line):
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def sections(markdown):
    """(section title, [(key, type, default, restart, meaning)]) per key table."""
    out, title, header = [], None, None
    for line in markdown.splitlines():
        m = re.match(r"^### `(\[+[a-z_.]+\]+)`", line)
        if m:
            title, header = m.group(1), None
            continue
        if line.startswith("## "):
            title = None
        if title is None or not line.startswith("|"):
            continue
        row = cells(line)
        if header is None:
            header = row
            out.append((title, []))
            continue
        if set("".join(row)) <= set("-: "):
            continue
        entry = dict(zip(header, row))
        out[-1][1].append((entry["key"].strip("`"), entry.get("type", ""), entry.get("default", ""),
                           entry.get("restart?", ""), entry.get("meaning", "")))
    return [s for s in out if s[1]]


def main():
    markdown = open(sys.argv[1], encoding="utf-8").read()
    version = sys.argv[2]
    print('.TH SHREDD.TOML 5 "" "shredd %s" "shredd"' % version)
    print(".SH NAME\nshredd.toml \\- configuration file of shredd(8)")
    print(".SH SYNOPSIS\n/etc/shredd/shredd.toml")
    print(".SH DESCRIPTION")
    print(roff("shredd reads its settings from the embedded defaults, then the TOML file given with `--config FILE`, "
               "then its command-line flags, each overriding the one before. Keys absent from the file keep their "
               "defaults. An unknown key, a wrong type or a bad value is an error that names the file, the line and "
               "the key; `shredd --check-config --config FILE` checks a file and touches nothing. Relative paths "
               "are relative to the daemon's working directory (/ under systemd). The file grants roles, so the daemon "
               "refuses it (at start, and on reload) unless only root or the daemon's user can change it: owned by "
               "one of them, not writable by its group or others, in directories no other user can write (a sticky "
               "one like /tmp is fine)."))
    print(".SH KEYS")
    for title, keys in sections(markdown):
        print('.SS "%s"' % roff(title))
        for key, typ, default, restart, meaning in keys:
            facts = ", ".join(x for x in (typ, "default " + default if default else "",
                                          "restart needed" if restart.strip("*") == "yes" else
                                          "applied on reload" if restart else "") if x)
            print(".TP\n\\fB%s\\fR (%s)\n%s" % (roff(key), roff(facts), roff(meaning)))
    print(".SH RELOADING")
    print(roff("SIGHUP (`systemctl reload shredd`) re-reads the same file with the same flags. If it is valid, "
               "[[roles.local]], [[roles.tls]], log_format and min_free_mib apply at once and every other changed "
               "key is logged as taking effect at the next start; if it is not, the running config stays."))
    print(".SH FILES\n/etc/shredd/shredd.toml \\- the packaged service's config (a conffile)")
    print(".SH SEE ALSO\nshredd(8), shredctl(1); docs/CONFIG.md in the shredd sources.")


if __name__ == "__main__":
    main()
