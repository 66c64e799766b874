"""The manual and the shell completions (issue 16, part 2): the man pages
the build writes (shredctl(1), shredd(8), shredd.toml(5)) render with
`man -l` and list exactly the commands, flags and config keys that --help
and the config parser know; `shredctl completion bash|zsh|fish` gives
working completions."""
import gzip
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import SHREDCTL, SHREDD

BUILD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(SHREDCTL)))
MAN_DIR = os.path.join(BUILD_DIR, "man")
FLAG = re.compile(r"\\fB((?:\\-)+[A-Za-z0-9\\-]+)\\fR")


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, timeout=60, **kw)


def man_source(name):
    with gzip.open(os.path.join(MAN_DIR, name + ".gz"), "rt") as f:
        return f.read()


def help_flags(binary, path):
    """Long and short flags --help lists for a command path, and its subcommands."""
    p = run(binary, *path, "--help")
    assert p.returncode == 0, p.stderr
    flags, commands, section = set(), [], None
    for line in p.stdout.decode().splitlines():
        if re.match(r"^\S.*:$", line):
            section = line
            continue
        if section is not None and section.startswith("Subcommands"):
            m = re.match(r"^  (\S+)", line)
            if m:
                commands.append(m.group(1))
            continue
        m = re.match(r"^  ((?:-\w,)?--?[\w-]+)", line)
        if m and line.lstrip().startswith("-"):
            flags.update(m.group(1).split(","))
    return flags, commands


def man_sections(source):
    """{command path: flags} from a page's OPTIONS and COMMANDS sections."""
    sections, current = {}, None
    for line in source.splitlines():
        if line.startswith(".SH "):
            current = () if line == ".SH OPTIONS" else None
            if current is not None:
                sections[current] = set()
            continue
        if line.startswith(".SS "):
            current = tuple(line[4:].strip('"').replace("\\-", "-").split())
            sections[current] = set()
            continue
        if current is not None and line.startswith("\\fB"):
            sections[current].update(f.replace("\\-", "-") for f in FLAG.findall(line))
    return sections


class ManPageTest(unittest.TestCase):
    def compare(self, binary, page):
        sections = man_sections(man_source(page))
        todo, seen = [()], set()
        while todo:
            path = todo.pop()
            seen.add(path)
            flags, commands = help_flags(binary, list(path))
            with self.subTest(page=page, command=" ".join(path)):
                self.assertIn(path, sections, "%s has no section for %r" % (page, path))
                self.assertEqual(sections[path], flags)
            todo += [path + (c,) for c in commands]
        self.assertEqual(set(sections), seen, "the page documents commands --help does not list, or misses some")

    def test_shredctl_1_matches_help(self):
        self.compare(SHREDCTL, "shredctl.1")

    def test_shredd_8_matches_help(self):
        self.compare(SHREDD, "shredd.8")

    def test_shredd_toml_5_lists_exactly_the_parsers_keys(self):
        source = man_source("shredd.toml.5")
        documented, section, previous = {}, None, ""
        for line in source.splitlines():
            after_tp, previous = previous == ".TP", line
            if line.startswith(".SH "):
                section = None
            elif line.startswith(".SS "):
                section = line[4:].strip('"').replace("\\-", "-").strip("[]")
                documented[section] = set()
            elif section and after_tp:
                documented[section].add(re.match(r"\\fB([^\\]+)\\fR", line).group(1))
        # What the parser knows, from its "unknown key (known: ...)" errors.
        known = {}
        tmp = tempfile.mkdtemp(prefix="shredd-man-")
        try:
            probes = {s: "[%s]\nbogus = 1\n" % s for s in ("server", "storage", "log", "shred", "object_store",
                                                            "tls")}
            probes["roles.local"] = '[[roles.local]]\nuid = 1\nroles = ["admin"]\nbogus = 1\n'
            probes["roles.tls"] = '[[roles.tls]]\nsan = "x"\nroles = ["admin"]\nbogus = 1\n'
            for section, text in probes.items():
                path = os.path.join(tmp, "c.toml")
                with open(path, "w") as f:
                    f.write(text)
                p = run(SHREDD, "--check-config", "--config", path)
                m = re.search(r"unknown key \(known: ([^)]*)\)", p.stderr.decode())
                self.assertIsNotNone(m, p.stderr)
                known[section] = {k.strip() for k in m.group(1).split(",")}
        finally:
            shutil.rmtree(tmp)
        self.assertEqual(documented, known)

    def test_man_renders_each_page(self):
        for page in ("shredctl.1", "shredd.8", "shredd.toml.5"):
            with self.subTest(page=page):
                p = run("man", "--warnings", "-l", "-E", "UTF-8", os.path.join(MAN_DIR, page + ".gz"),
                        env=dict(os.environ, MANWIDTH="100", MANPAGER="cat", PAGER="cat"))
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr, b"", "groff warnings")
                out = p.stdout.decode()
                self.assertIn("NAME", out)
                self.assertIn(page.rsplit(".", 1)[0], out)
        out = run("man", "-l", os.path.join(MAN_DIR, "shredctl.1.gz"),
                  env=dict(os.environ, MANWIDTH="200", MANPAGER="cat")).stdout.decode()
        for text in ("log monitor", "--server", "EXIT STATUS", "SHREDCTL_CONFIG", "config show"):
            self.assertIn(text, out)


class CompletionTest(unittest.TestCase):
    def bash_complete(self, line):
        words = line.split(" ")
        script = ('source <("$0" completion bash) && complete -p shredctl && COMP_WORDS=(%s) && '
                  'COMP_CWORD=%d && _shredctl && echo "${COMPREPLY[*]}"'
                  % (" ".join("'%s'" % w for w in words), len(words) - 1))
        p = run("bash", "-c", script, SHREDCTL)
        self.assertEqual(p.returncode, 0, p.stderr)
        spec, replies = (p.stdout.decode().split("\n") + [""])[:2]
        self.assertIn("complete", spec)
        self.assertIn("shredctl", spec)
        return replies.split()

    def test_bash(self):
        self.assertEqual(self.bash_complete("shredctl l"), ["lineage", "log", "ls"])
        self.assertEqual(self.bash_complete("shredctl log m"), ["monitor"])
        self.assertEqual(self.bash_complete("shredctl --server unix:x log m"), ["monitor"])
        self.assertIn("--state", self.bash_complete("shredctl log monitor --st"))
        self.assertEqual(self.bash_complete("shredctl ls --js"), ["--json"])
        self.assertEqual(self.bash_complete("shredctl completion"), ["completion"])
        self.assertEqual(self.bash_complete("shredctl config s"), ["show"])
        # After a flag that takes a value: no commands offered (files are).
        self.assertEqual(self.bash_complete("shredctl --server "), [])

    @unittest.skipUnless(shutil.which("zsh"), "zsh not installed (scripts/install-deps.sh)")
    def test_zsh(self):
        script = ('autoload -U compinit && compinit -u -D && source <("$0" completion zsh) && '
                  'print -r -- ${_comps[shredctl]} && print -r -- ${_shredctl_cmds[log]}')
        p = run("zsh", "-f", "-c", script, SHREDCTL)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.decode().splitlines()
        self.assertEqual(lines[0], "_shredctl")
        self.assertIn("monitor", lines[1].split())

    @unittest.skipUnless(shutil.which("fish"), "fish not installed (scripts/install-deps.sh)")
    def test_fish(self):
        def complete(line):
            p = run("fish", "--no-config", "-c",
                    'set -l exe $argv[1]; function shredctl; end; $exe completion fish | source; complete -C "%s"'
                    % line, "--", SHREDCTL)
            self.assertEqual(p.returncode, 0, p.stderr)
            return [l.split("\t")[0] for l in p.stdout.decode().splitlines()]
        self.assertEqual(sorted(complete("shredctl l")), ["lineage", "log", "ls"])
        self.assertEqual(complete("shredctl log m"), ["monitor"])
        self.assertIn("--state", complete("shredctl log monitor --st"))

    def test_unknown_shell(self):
        p = run(SHREDCTL, "completion", "tcsh")
        self.assertEqual(p.returncode, 2)
        self.assertIn('no completion for shell "tcsh"', p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
