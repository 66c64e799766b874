// shredd: the deletion daemon. See README.md and docs/.
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "daemon/server.h"

int main(int argc, char** argv) {
  // No core dumps: they would hold key material.
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  prctl(PR_SET_DUMPABLE, 0);
  if (sodium_init() < 0) {
    std::cerr << "shredd: libsodium failed to initialise\n";
    return 1;
  }
  // Stop signals are taken by sigwait in RunDaemon; block them before any
  // thread starts so every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  shredd::DaemonOptions opt;
  CLI::App app{"shredd: stores photos and model weights, deletes them by cryptographic shredding, "
               "and certifies every deletion"};
  app.add_option("--data-dir", opt.data_dir, "RocksDB and ciphertext directory")->capture_default_str();
  app.add_option("--listen", opt.listen, "unix:PATH or tcp:HOST:PORT (loopback); repeatable")
      ->capture_default_str();
  app.add_option("--vault", opt.vault, "root key vault: file:DIR or pkcs11:module=...;token=...;pin=...")
      ->capture_default_str();
  app.add_option("--inline-threshold", opt.inline_threshold,
                 "items up to this many bytes are stored inside RocksDB")
      ->capture_default_str();
  app.add_option("--log-origin", opt.log_origin,
                 "transparency log origin, also its checkpoints' key name "
                 "(default: shredd.local/<first 16 hex of the signing key id>)");
  app.add_flag_callback("--version", [] {
    std::cout << "shredd " << SHREDD_VERSION << "\n";
    std::exit(0);
  }, "print the version and exit");
  CLI11_PARSE(app, argc, argv);

  absl::Status s = shredd::RunDaemon(opt);
  if (!s.ok()) {
    std::cerr << "shredd: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
