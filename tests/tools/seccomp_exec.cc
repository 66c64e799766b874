// seccomp_exec: runs a program under the seccomp filters that systemd 252
// installs for systemd/shredd.service, for tests/integration/test_sandbox.py.
// systemd is not PID 1 in the test environment, so systemd-run cannot apply
// the unit; this launcher applies the same kernel mechanisms itself:
//
//   NoNewPrivileges=yes               prctl(PR_SET_NO_NEW_PRIVS)
//   SystemCallFilter=@system-service  allow list read from --allow FILE (the
//   SystemCallFilter=~@privileged ... test expands the groups with
//                                     `systemd-analyze syscall-filter`)
//   SystemCallErrorNumber=EPERM       --action eperm (or: kill, stricter:
//                                     any denied call kills the process)
//   SystemCallArchitectures=native    libseccomp's default: other ABIs kill
//   MemoryDenyWriteExecute=yes        mmap(PROT_WRITE|PROT_EXEC),
//                                     mprotect/pkey_mprotect(PROT_EXEC) and
//                                     shmat(SHM_EXEC) fail with EPERM, as in
//                                     systemd's seccomp_memory_deny_write_execute()
//   RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
//                                     socket() of any other family fails
//                                     with EAFNOSUPPORT
//
// Usage: seccomp_exec --allow FILE [--action eperm|kill] [--self-test] [-- PROGRAM ARGS...]
// --self-test checks, after installing the filters, that each mechanism
// refuses what it should and allows what it should, prints one line per
// check and exits 0 only if all hold.
#include <errno.h>
#include <linux/prctl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "seccomp_exec: %s\n", msg.c_str());
  std::exit(125);
}

void Check(int rc, const char* what) {
  if (rc < 0) Die(std::string(what) + ": " + std::strerror(-rc));
}

// MemoryDenyWriteExecute=yes, as systemd 252 builds it (its own filter).
void LoadMemoryDenyWriteExecute() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) Die("seccomp_init");
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  Check(seccomp_rule_add(ctx, deny, SCMP_SYS(mmap), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC | PROT_WRITE, PROT_EXEC | PROT_WRITE)),
        "mmap rule");
  Check(seccomp_rule_add(ctx, deny, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)),
        "mprotect rule");
  Check(seccomp_rule_add(ctx, deny, SCMP_SYS(pkey_mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)),
        "pkey_mprotect rule");
  Check(seccomp_rule_add(ctx, deny, SCMP_SYS(shmat), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)), "shmat rule");
  Check(seccomp_load(ctx), "loading the MemoryDenyWriteExecute filter");
  seccomp_release(ctx);
}

// RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6.
void LoadAddressFamilies() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) Die("seccomp_init");
  for (int family = 0; family < AF_MAX; ++family) {
    if (family == AF_UNIX || family == AF_INET || family == AF_INET6) continue;
    Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                           SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))),
          "socket rule");
  }
  Check(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_GE, static_cast<scmp_datum_t>(AF_MAX))),
        "socket rule");
  Check(seccomp_load(ctx), "loading the address family filter");
  seccomp_release(ctx);
}

// SystemCallFilter= allow list; everything else gets `deny_action`. Loaded
// last: seccomp(2) itself is not on the list.
size_t LoadSystemCallFilter(const std::vector<std::string>& allow, uint32_t deny_action) {
  scmp_filter_ctx ctx = seccomp_init(deny_action);
  if (ctx == nullptr) Die("seccomp_init");
  size_t added = 0;
  for (const auto& name : allow) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR || nr < 0) continue;  // not a syscall of this architecture
    Check(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), name.c_str());
    ++added;
  }
  Check(seccomp_load(ctx), "loading the system call filter");
  seccomp_release(ctx);
  return added;
}

bool Expect(const char* what, bool ok) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  return ok;
}

int SelfTest() {
  bool all = true;
  errno = 0;
  void* rwx = mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  all &= Expect("MemoryDenyWriteExecute: mmap(PROT_WRITE|PROT_EXEC) -> EPERM", rwx == MAP_FAILED && errno == EPERM);
  void* rw = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  all &= Expect("MemoryDenyWriteExecute: mmap(PROT_READ|PROT_WRITE) allowed", rw != MAP_FAILED);
  errno = 0;
  int rc = mprotect(rw, 4096, PROT_READ | PROT_EXEC);
  all &= Expect("MemoryDenyWriteExecute: mprotect(PROT_EXEC) -> EPERM", rc == -1 && errno == EPERM);
  errno = 0;
  int prio = getpriority(PRIO_PROCESS, 0);
  rc = setpriority(PRIO_PROCESS, 0, prio);
  all &= Expect("~@resources: setpriority -> EPERM", rc == -1 && errno == EPERM);
  cpu_set_t cpus;
  sched_getaffinity(0, sizeof cpus, &cpus);
  errno = 0;
  rc = sched_setaffinity(0, sizeof cpus, &cpus);
  all &= Expect("~@resources: sched_setaffinity -> EPERM", rc == -1 && errno == EPERM);
  errno = 0;
  rc = acct(nullptr);
  all &= Expect("~@privileged: acct -> EPERM", rc == -1 && errno == EPERM);
  errno = 0;
  rc = setuid(getuid());
  all &= Expect("~@privileged: setuid -> EPERM", rc == -1 && errno == EPERM);
  errno = 0;
  rc = static_cast<int>(syscall(SYS_swapoff, "/nonexistent"));
  all &= Expect("not in @system-service: swapoff -> EPERM", rc == -1 && errno == EPERM);
  errno = 0;
  int fd = socket(AF_NETLINK, SOCK_RAW, 0);
  all &= Expect("RestrictAddressFamilies: socket(AF_NETLINK) -> EAFNOSUPPORT", fd == -1 && errno == EAFNOSUPPORT);
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  all &= Expect("RestrictAddressFamilies: socket(AF_UNIX) allowed", fd >= 0);
  if (fd >= 0) close(fd);
  all &= Expect("NoNewPrivileges: set", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
  return all ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string allow_file;
  uint32_t deny_action = SCMP_ACT_ERRNO(EPERM);
  bool self_test = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--allow" && i + 1 < argc) {
      allow_file = argv[++i];
    } else if (a == "--action" && i + 1 < argc) {
      std::string v = argv[++i];
      if (v == "eperm") {
        deny_action = SCMP_ACT_ERRNO(EPERM);
      } else if (v == "kill") {
        deny_action = SCMP_ACT_KILL_PROCESS;
      } else {
        Die("--action wants eperm or kill");
      }
    } else if (a == "--self-test") {
      self_test = true;
    } else if (a == "--") {
      ++i;
      break;
    } else {
      Die("usage: seccomp_exec --allow FILE [--action eperm|kill] [--self-test] [-- PROGRAM ARGS...]");
    }
  }
  if (allow_file.empty()) Die("--allow FILE is required");
  if (!self_test && i >= argc) Die("no program to run");
  std::vector<std::string> allow;
  std::ifstream in(allow_file);
  if (!in) Die("cannot read " + allow_file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') allow.push_back(line);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Die(std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno));
  LoadMemoryDenyWriteExecute();
  LoadAddressFamilies();
  size_t n = LoadSystemCallFilter(allow, deny_action);
  if (self_test) {
    std::printf("filters loaded: %zu system calls allowed\n", n);
    return SelfTest();
  }
  execv(argv[i], argv + i);
  Die(std::string("execv ") + argv[i] + ": " + std::strerror(errno));
}
