"""The real daemon under the seccomp restrictions of systemd/shredd.service.

systemd is not PID 1 here, so `systemd-run -p ...` cannot apply the unit.
tests/tools/seccomp_exec applies the same kernel mechanisms that systemd 252
uses for the unit's settings:

  SystemCallFilter=@system-service + SystemCallFilter=~@privileged @resources
      (the groups are expanded with `systemd-analyze syscall-filter`, read
      from the unit file, so a change to the unit changes the test)
  SystemCallErrorNumber=EPERM, SystemCallArchitectures=native
  MemoryDenyWriteExecute=yes (systemd's seccomp rules for mmap, mprotect,
      pkey_mprotect, shmat)
  RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6, NoNewPrivileges=yes

and the daemon then serves puts, gets, shreds, an order, the log, loopback
TCP, metrics and a SIGHUP reload, and stops cleanly. What is not emulated
(mount namespaces of ProtectSystem=, DynamicUser=, PrivateDevices=, ...) is
listed in docs/SERVICE.md.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from harness import REPO, SHREDD, Daemon, DaemonTest, ctl_offline, pb, sha256_digest
from shredd.v1 import log_pb2 as lpb  # noqa: E402
from shredd.v1 import log_pb2_grpc as lpb_grpc  # noqa: E402
from shredd.v1 import orders_pb2 as opb  # noqa: E402
from shredd.v1 import orders_pb2_grpc as opb_grpc  # noqa: E402

SECCOMP_EXEC = os.path.join(os.path.dirname(SHREDD), "seccomp_exec")
UNIT = os.path.join(os.environ.get("SHREDD_REPO", REPO), "systemd", "shredd.service")
# systemd.exec(5): allowed even when not listed.
IMPLICIT = ["execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn",
            "clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday", "time"]


def syscall_groups():
    """{"@group": [entries]} from `systemd-analyze syscall-filter`."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
        elif not line.strip():
            current = None
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            out |= expand(groups[n], groups, seen)
        else:
            out.add(n)
    return out


def unit_allow_list():
    """The unit's SystemCallFilter= lines, resolved as systemd does: the first
    (an allow list) sets the set, later ~ lines remove from it."""
    groups = syscall_groups()
    allowed = None
    with open(UNIT) as f:
        for line in f:
            m = re.match(r"^SystemCallFilter=(.*)$", line.strip())
            if not m:
                continue
            value = m.group(1).strip()
            deny = value.startswith("~")
            names = expand(value.lstrip("~").split(), groups)
            if allowed is None:
                assert not deny, "the unit's first SystemCallFilter= must be an allow list"
                allowed = set(names)
            elif deny:
                allowed -= names
            else:
                allowed |= names
    assert allowed, "no SystemCallFilter= in the unit"
    return sorted(allowed | set(IMPLICIT))


def unit_has(setting):
    with open(UNIT) as f:
        return any(l.strip() == setting for l in f)


class SandboxedDaemon(Daemon):
    def __init__(self, root, allow_file, action="eperm", **kw):
        super().__init__(root, **kw)
        self.allow_file = allow_file
        self.action = action

    def command(self):
        return [SECCOMP_EXEC, "--allow", self.allow_file, "--action", self.action, "--"] + super().command()


@unittest.skipUnless(os.path.exists(SECCOMP_EXEC), "bin/seccomp_exec was not built")
@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
class SandboxTest(DaemonTest):
    start_daemon = False

    def setUp(self):
        super().setUp()
        # The launcher emulates these settings; the test is void if the unit drops them.
        for s in ("MemoryDenyWriteExecute=yes", "NoNewPrivileges=yes", "SystemCallErrorNumber=EPERM",
                  "SystemCallArchitectures=native", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"):
            self.assertTrue(unit_has(s), "%s is no longer in the unit: update tests/tools/seccomp_exec" % s)
        self.allow = os.path.join(self.tmp, "allow.txt")
        names = unit_allow_list()
        with open(self.allow, "w") as f:
            f.write("\n".join(names) + "\n")
        # Sanity: the expansion is what the unit means.
        for must in ("read", "openat", "fdatasync", "epoll_wait", "socket", "mmap", "futex", "clone3"):
            self.assertTrue(must in names, must)
        for never in ("setpriority", "sched_setaffinity", "setuid", "acct", "swapon", "reboot", "init_module",
                      "mount", "ptrace", "kexec_load", "bpf", "seccomp"):
            self.assertFalse(never in names, never)

    def test_the_filters_refuse_what_the_unit_refuses(self):
        p = subprocess.run([SECCOMP_EXEC, "--allow", self.allow, "--self-test"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count("\nok  "), 11, p.stdout)

    def run_workload(self, action):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        tcp_port = s.getsockname()[1]
        s.close()
        self.d = SandboxedDaemon(self.tmp, self.allow, action=action,
                                 extra_args=["--listen", "tcp:127.0.0.1:%d" % tcp_port,
                                             "--metrics-listen", "127.0.0.1:0"])
        self.d.start(timeout=60)
        # The daemon itself (the launcher exec'd it) runs under the filters.
        with open("/proc/%d/status" % self.d.proc.pid) as f:
            status = f.read()
        self.assertIn("\nNoNewPrivs:\t1\n", status)
        self.assertIn("\nSeccomp:\t2\n", status)  # filter mode
        self.assertIn("\nSeccomp_filters:\t3\n", status)  # MDWE, address families, system calls
        with open("/proc/%d/cmdline" % self.d.proc.pid, "rb") as f:
            self.assertEqual(f.read().split(b"\0")[0], SHREDD.encode())
        # Streaming put of a file-backed item and BatchPut of inline ones.
        big = os.urandom(3 << 20)
        path = os.path.join(self.tmp, "big.bin")
        with open(path, "wb") as f:
            f.write(big)
        self.d.ctl("put", path, "--dataset", "sandbox", "--subject", "s-1")
        req = pb.BatchPutRequest()
        small = [os.urandom(1000) for _ in range(20)]
        for data in small:
            e = req.entries.add()
            e.header.digest.hash = sha256_digest(data)
            e.header.digest.size_bytes = len(data)
            e.header.metadata.kind = pb.KIND_PHOTO
            e.header.metadata.datasets.append("sandbox-small")
            e.data = data
        self.assertTrue(all(r.code == 0 for r in self.d.store().BatchPut(req, timeout=60).results))
        # Reads, whole and ranged, over the unix socket and loopback TCP.
        self.assertEqual(self.d.get_bytes(sha256_digest(big)), big)
        self.assertEqual(self.d.get_bytes(sha256_digest(big), offset=(1 << 20) - 3, limit=10),
                         big[(1 << 20) - 3:(1 << 20) + 7])
        p = subprocess.run([os.environ.get("SHREDCTL_BIN", os.path.join(os.path.dirname(SHREDD), "shredctl")),
                            "--server", "tcp:127.0.0.1:%d" % tcp_port, "get", sha256_digest(small[0])],
                           capture_output=True, timeout=60)
        self.assertEqual(p.stdout, small[0], p.stderr)
        # A shred with its certificate, verified offline.
        pem = os.path.join(self.tmp, "pub.pem")
        self.d.ctl("pubkey", "-o", pem)
        cert = os.path.join(self.tmp, "cert.json")
        self.d.ctl("shred", sha256_digest(small[1]), "--reason", "sandbox test", "-o", cert)
        self.assertEqual(ctl_offline("verify", cert, "--pubkey", pem, "--manifest",
                                     cert[:-5] + ".manifest.json").returncode, 0)
        # An order over a dataset, run by the background worker.
        orders = opb_grpc.OrdersStub(self.d.channel())
        orders.SubmitOrder(opb.OrderSpec(id="sandbox-order", basis=opb.OTHER, reference="r",
                                         datasets=["sandbox-small"]), timeout=60)
        st = orders.GetOrder(opb.GetOrderRequest(order_id="sandbox-order", wait=True), timeout=120)
        self.assertEqual(st.state, opb.ORDER_DONE, st.message)
        # The log and its proofs.
        log = lpb_grpc.LogStub(self.d.channel())
        cp = log.GetCheckpoint(lpb.GetCheckpointRequest(), timeout=30)
        self.assertGreater(len(cp.checkpoint), 0)
        # Metrics over AF_INET.
        m = re.search(r"url=(http://127\.0\.0\.1:\d+/metrics)", self.d.log())
        self.assertIsNotNone(m, self.d.log())
        body = urllib.request.urlopen(m.group(1), timeout=10).read().decode()
        self.assertIn('shredd_orders{state="done"} 1', body)
        # SIGHUP: nothing to re-read without --config, but the daemon answers.
        self.d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertEqual(self.d.get_bytes(sha256_digest(big), limit=100), big[:100])
        self.assertEqual(self.d.stop(), 0, self.d.log())
        self.assertIn("stopped cleanly", self.d.log())
        # The same data dir, outside the sandbox: everything is there.
        plain = Daemon(self.tmp)
        plain.start()
        try:
            self.assertEqual(plain.get_bytes(sha256_digest(big)), big)
            self.assertFalse(plain.ctl("stat", sha256_digest(small[1]), check=False).returncode == 0)
        finally:
            plain.kill()

    def test_daemon_serves_under_the_units_filters(self):
        # SystemCallErrorNumber=EPERM, as in the unit.
        self.run_workload("eperm")

    def test_daemon_makes_no_call_the_filter_denies(self):
        # Stricter than the unit: any denied call kills the daemon at once, so
        # the workload passing means no denied call was even attempted (none
        # fails silently with EPERM).
        self.run_workload("kill")


if __name__ == "__main__":
    unittest.main()
