"""shredctl's framework against the real daemon (issue 16, parts 1 and 3):
global flags before or after the command, unknown commands and flags named
with a suggestion, one test per documented exit code (docs/CLI.md), the
client config file with flags > environment > file, the default server's
fallback to the packaged service's socket, and `shredctl config show`."""
import base64
import json
import os
import shutil
import subprocess
import unittest

from harness import SHREDCTL, SHREDD, DaemonTest, sha256_digest


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def clean_env(**extra):
    """The environment without any SHREDD_*/SHREDCTL_* setting, and a HOME
    with no client config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHREDD_SERVER", "SHREDD_TLS", "SHREDCTL_", "XDG_CONFIG_HOME"))}
    env.update(extra)
    return env


class UsageTest(DaemonTest):
    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home)
        self.env = clean_env(HOME=self.home)

    def run_ctl(self, *args, env=None, cwd=None, input=None):
        return subprocess.run([SHREDCTL] + list(args), capture_output=True, env=env or self.env,
                              cwd=cwd or self.tmp, input=input, timeout=120)

    def assertExit(self, p, code, contains=None):
        self.assertEqual(p.returncode, code, (p.stdout, p.stderr))
        err = p.stderr.decode()
        if code != 0:
            self.assertTrue(err.startswith("shredctl: ") and err.endswith("\n"), err)
            self.assertEqual(len(err.splitlines()), 1, "one line: %r" % err)
        if contains:
            self.assertIn(contains, err)


class FlagPlacementTest(UsageTest):
    def test_global_flags_before_or_after_the_command(self):
        f = os.path.join(self.tmp, "dir", "a.bin")
        write(f, b"flag placement")
        srv = self.d.address
        # put DIR -q, and --server after the command.
        p = self.run_ctl("put", os.path.dirname(f), "-q", "--server", srv)
        self.assertExit(p, 0)
        self.assertIn(b"stored", p.stdout)
        for args in (["ls", "--json", "--server", srv], ["--json", "ls", "--server", srv],
                     ["--server", srv, "--json", "ls"], ["--server=" + srv, "ls", "--json"],
                     ["ls", "--server=" + srv, "--json", "--kind", "photo"]):
            with self.subTest(args=args):
                p = self.run_ctl(*args)
                self.assertExit(p, 0)
                lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
                self.assertEqual([l["name"] for l in lines], ["a.bin"])
        # Nested commands too; TLS flags after the command are taken (and
        # ignored for a unix: server, as documented).
        p = self.run_ctl("log", "checkpoint", "--json", "--server", srv, "--tls-server-name", "x")
        self.assertExit(p, 0)
        self.assertIn("treeSize", json.loads(p.stdout))
        p = self.run_ctl("stat", sha256_digest(b"flag placement"), "--server", srv, "--json")
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["size"], len(b"flag placement"))

    def test_unknown_commands_and_flags_are_named_with_a_suggestion(self):
        cases = [
            (["lss"], 'unknown command "lss"; did you mean "ls"?'),
            (["sahred"], 'unknown command "sahred"; did you mean "shred"?'),
            (["log", "chekpoint"], 'unknown command "chekpoint" for "shredctl log"; did you mean "checkpoint"?'),
            (["order", "sumbit"], 'unknown command "sumbit" for "shredctl order"; did you mean "submit"?'),
            (["frobnicate"], 'unknown command "frobnicate" (commands: '),
            (["ls", "--jsno"], 'unknown flag "--jsno" for "shredctl ls"; did you mean "--json"?'),
            (["ls", "--limt", "3"], 'unknown flag "--limt" for "shredctl ls"; did you mean "--limit"?'),
            (["--sever", "unix:x", "ls"], 'unknown flag "--sever" for "shredctl"; did you mean "--server"?'),
            (["put", "-json", "x"], 'unknown flag "-json"; did you mean "--json"?'),
            (["log"], '"shredctl log" needs a command: checkpoint, entry, proof, verify, monitor, audit'),
            ([], '"shredctl" needs a command: '),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                p = self.run_ctl(*args)
                self.assertExit(p, 2, message)
                self.assertEqual(p.stdout, b"")

    def test_help_still_works_everywhere(self):
        for args in (["--help"], ["ls", "--help"], ["log", "monitor", "--help"], ["completion", "--help"]):
            with self.subTest(args=args):
                p = self.run_ctl(*args)
                self.assertExit(p, 0)
                self.assertIn(b"Usage: shredctl", p.stdout)
                self.assertIn(b"--json", p.stdout, "each command's help names the global flags")


class ExitCodeTest(UsageTest):
    """One case per exit code of docs/CLI.md's table."""

    def ctl(self, *args, **kw):
        return self.run_ctl("--server", self.d.address, *args, **kw)

    def test_0_success(self):
        self.assertExit(self.ctl("ls"), 0)

    def test_1_failure(self):
        p = self.ctl("--json", "stat", "sha256:XYZ")
        self.assertExit(p, 1)
        self.assertEqual(json.loads(p.stdout)["code"], "INVALID_ARGUMENT")

    def test_2_usage(self):
        self.assertExit(self.ctl("get"), 2)
        self.assertExit(self.ctl("ls", "--kind", "banana"), 2)

    def test_3_verification_failed(self):
        f = os.path.join(self.tmp, "v.bin")
        write(f, b"to be verified")
        self.assertExit(self.ctl("put", f), 0)
        cert = os.path.join(self.tmp, "cert.json")
        self.assertExit(self.ctl("shred", f, "-o", cert), 0)
        key = os.path.join(self.tmp, "key.pem")
        self.assertExit(self.ctl("pubkey", "-o", key), 0)
        self.assertExit(self.run_ctl("verify", cert, "--pubkey", key), 0)
        with open(cert) as f:
            env = json.load(f)
        sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
        sig[0] ^= 1
        env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
        with open(cert, "w") as out:
            json.dump(env, out)
        self.assertExit(self.run_ctl("verify", cert, "--pubkey", key), 3)

    def test_4_not_found(self):
        p = self.ctl("--json", "stat", sha256_digest(b"never stored"))
        self.assertExit(p, 4)
        self.assertEqual(json.loads(p.stdout)["code"], "NOT_FOUND")

    def test_5_unreachable(self):
        p = self.run_ctl("--server", "unix:" + os.path.join(self.tmp, "none.sock"), "ls")
        self.assertExit(p, 5, "is shredd running?")

    def test_6_reuploading_shredded_content_is_refused(self):
        small, large = os.path.join(self.tmp, "s.bin"), os.path.join(self.tmp, "l.bin")
        write(small, b"small shredded photo")
        write(large, os.urandom(200 * 1024))  # above the BatchPut limit: streamed
        for f in (small, large):
            with self.subTest(path=f):
                self.assertExit(self.ctl("put", f), 0)
                self.assertExit(self.ctl("shred", f, "-o", f + ".cert.json"), 0)
                p = self.ctl("--json", "put", f)
                self.assertEqual(p.returncode, 6, p.stderr)
                lines = [json.loads(line) for line in p.stdout.splitlines()]
                failed = [x for x in lines if x.get("status") == "failed"]  # then put's total line
                self.assertEqual(len(failed), 1, lines)
                self.assertIn("FAILED_PRECONDITION", failed[0]["error"])
        # Both at once, failing alike: still 6.
        self.assertEqual(self.ctl("put", small, large).returncode, 6)

    def test_6_same_order_id_other_fields(self):
        f = os.path.join(self.tmp, "o.bin")
        write(f, b"ordered")
        self.assertExit(self.ctl("put", f, "--dataset", "ds"), 0)
        base = ["order", "submit", "--id", "o-1", "--basis", "gdpr-art17", "--dataset", "ds"]
        self.assertExit(self.ctl(*base, "--reference", "R-1"), 0)
        self.assertExit(self.ctl(*base, "--reference", "R-2"), 6)

    def test_6_put_with_some_items_refused(self):
        shredded, bad = os.path.join(self.tmp, "x.bin"), os.path.join(self.tmp, "model.bin")
        write(shredded, b"shredded then mixed")
        self.assertExit(self.ctl("put", shredded), 0)
        self.assertExit(self.ctl("shred", shredded, "-o", os.path.join(self.tmp, "c.json")), 0)
        write(bad, b"ok")
        # One item refused (6), one stored: every failure alike, so 6.
        self.assertEqual(self.ctl("put", shredded, bad).returncode, 6)

    def test_7_fork_or_rollback(self):
        state, vkey = os.path.join(self.tmp, "monitor.state"), os.path.join(self.tmp, "log.vkey")
        self.assertExit(self.ctl("pubkey", "--format", "vkey", "-o", vkey), 0)
        self.assertExit(self.ctl("log", "monitor", "--state", state, "--vkey", vkey), 0)
        self.assertEqual(self.d.stop(), 0)
        backup = os.path.join(self.tmp, "data-backup")
        shutil.copytree(self.d.data_dir, backup)
        self.d.start()
        f = os.path.join(self.tmp, "grow.bin")
        write(f, b"grows the log")
        self.assertExit(self.ctl("put", f), 0)
        self.assertExit(self.ctl("log", "monitor", "--state", state, "--vkey", vkey), 0)
        self.assertEqual(self.d.stop(), 0)
        shutil.rmtree(self.d.data_dir)
        shutil.copytree(backup, self.d.data_dir)
        self.d.start()
        self.assertExit(self.ctl("log", "monitor", "--state", state, "--vkey", vkey), 7, "FORK/ROLLBACK DETECTED")


class ClientConfigTest(UsageTest):
    def config(self, text, path=None):
        path = path or os.path.join(self.home, ".config", "shredd", "shredctl.toml")
        write(path, text.encode())
        return path

    def show(self, *args, env=None, cwd=None):
        p = self.run_ctl(*args, "config", "show", "--json", env=env, cwd=cwd)
        self.assertExit(p, 0)
        j = json.loads(p.stdout)
        return j, {k: (v["value"], v["source"]) for k, v in j["settings"].items()}

    def test_file_env_flag_precedence(self):
        srv = self.d.address
        path = self.config('server = "%s"\njson = true\ntls-ca = "ca.pem"\n' % srv)
        # No --json: the file's json = true makes the output JSON.
        p = self.run_ctl("config", "show")
        self.assertExit(p, 0)
        j = json.loads(p.stdout)
        s = {k: (v["value"], v["source"]) for k, v in j["settings"].items()}
        self.assertEqual(j["configFile"], path)
        self.assertEqual(s["server"], (srv, "file %s:1" % path))
        self.assertEqual(s["json"], ("true", "file %s:2" % path))
        # Relative paths are relative to the file.
        self.assertEqual(s["tls-ca"][0], os.path.join(os.path.dirname(path), "ca.pem"))
        # The file's server and json are used: ls works from anywhere and prints JSON.
        f = os.path.join(self.tmp, "c.bin")
        write(f, b"config file")
        self.assertExit(self.run_ctl("put", f, cwd="/"), 0)
        p = self.run_ctl("ls", cwd="/")
        self.assertExit(p, 0)
        self.assertEqual(json.loads(p.stdout)["name"], "c.bin")
        # The environment beats the file, the flag beats both.
        env = dict(self.env, SHREDD_SERVER="unix:/nonexistent/env.sock")
        _, s = self.show(env=env)
        self.assertEqual(s["server"], ("unix:/nonexistent/env.sock", "env SHREDD_SERVER"))
        self.assertExit(self.run_ctl("ls", env=env), 5)
        _, s = self.show("--server", srv, env=env)
        self.assertEqual(s["server"], (srv, "flag --server"))
        self.assertExit(self.run_ctl("ls", "--server", srv, env=env), 0)
        # --json=false turns the file's json off for one call.
        p = self.run_ctl("ls", "--json=false")
        self.assertExit(p, 0)
        self.assertTrue(p.stdout.decode().startswith("sha256:"), p.stdout)

    def test_xdg_config_home_and_shredctl_config(self):
        xdg = os.path.join(self.tmp, "xdg")
        path = self.config('server = "unix:/from/xdg.sock"\n', os.path.join(xdg, "shredd", "shredctl.toml"))
        env = dict(self.env, XDG_CONFIG_HOME=xdg)
        j, s = self.show(env=env)
        self.assertEqual((j["configFile"], s["server"][0]), (path, "unix:/from/xdg.sock"))
        other = self.config('quiet = true\n', os.path.join(self.tmp, "other.toml"))
        env["SHREDCTL_CONFIG"] = other
        j, s = self.show(env=env)
        self.assertEqual(j["configFile"], other)
        self.assertEqual(s["quiet"], ("true", "file %s:1" % other))
        # An explicit SHREDCTL_CONFIG that is missing is an error.
        env["SHREDCTL_CONFIG"] = os.path.join(self.tmp, "missing.toml")
        self.assertExit(self.run_ctl("config", "show", env=env), 2, "missing.toml")

    def test_bad_config_files_are_usage_errors_naming_the_line(self):
        for text, message in (('server = "x"\nsevrer = "y"\n', ":2: sevrer: unknown key"),
                              ('json = "yes"\n', ":1: json: expected true or false"),
                              ('server = 7\n', ":1: server: expected a string"),
                              ('server = \n', ":1: ")):
            with self.subTest(text=text):
                path = self.config(text)
                p = self.run_ctl("ls")
                self.assertExit(p, 2, path + message)
                # Completion scripts do not need the config.
                self.assertExit(self.run_ctl("completion", "bash"), 0)

    def test_default_server_falls_back_to_the_service_socket(self):
        _, s = self.show(cwd=self.tmp)
        self.assertEqual(s["server"][0], "unix:./var/shredd/shredd.sock")
        # The quick-start socket in the current directory wins.
        os.makedirs(os.path.join(self.tmp, "qs", "var", "shredd"))
        os.symlink(self.d.socket, os.path.join(self.tmp, "qs", "var", "shredd", "shredd.sock"))
        _, s = self.show(cwd=os.path.join(self.tmp, "qs"))
        self.assertEqual(s["server"], ("unix:./var/shredd/shredd.sock", "default: the quick-start daemon's socket"))
        self.assertExit(self.run_ctl("ls", cwd=os.path.join(self.tmp, "qs")), 0)
        # Elsewhere, the packaged service's socket: a private mount namespace
        # with a tmpfs on /run, where the daemon's socket is linked.
        if shutil.which("unshare") is None or os.geteuid() != 0:
            self.skipTest("needs unshare and root for a private /run")
        script = ('mount -t tmpfs tmpfs /run && mkdir /run/shredd && ln -s "$1" /run/shredd/shredd.sock && '
                  'cd / && "$2" config show && "$2" --json ls')
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                            self.d.socket, SHREDCTL], capture_output=True, env=self.env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertIn("unix:/run/shredd/shredd.sock", out)
        self.assertIn("default: the packaged service's socket (./var/shredd/shredd.sock is absent)", out)

    def test_config_show_text(self):
        p = self.run_ctl("config", "show", "--server", self.d.address)
        self.assertExit(p, 0)
        out = p.stdout.decode()
        self.assertIn("config file: (none)", out)
        self.assertRegex(out, r"server +%s +flag --server" % self.d.address)
        self.assertRegex(out, r"tls-ca +\(not set\) +default")


if __name__ == "__main__":
    unittest.main()
