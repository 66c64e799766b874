#!/usr/bin/env bash
# Installs the Debian 12 packages shredd needs to build, run and test.
# Idempotent: runs apt-get only for packages that are missing.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # style: clang-format (the "format" test), clang-tidy (scripts/tidy.sh)
  clang-format clang-tidy
  # libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libsodium-dev libssl-dev libabsl-dev libsystemd-dev
  nlohmann-json3-dev libcli11-dev libp11-kit-dev
  # the streaming manifest parser (formats/manifest_reader.cc)
  rapidjson-dev
  # the daemon's allocator (daemon/app/memory.h)
  libjemalloc-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  softhsm2 opensc openssl python3 python3-nacl python3-grpcio python3-protobuf
  age xxd systemd
  # the full-disk and vault-failure tests: mount (tmpfs), chattr +i
  mount e2fsprogs
  # fuzzing: libFuzzer targets in fuzz/ (preset "fuzz", docs/RELIABILITY.md)
  clang libclang-rt-14-dev
  # independent transparency-log verifier (tests/tools/tlog_verify.go)
  golang-go golang-golang-x-mod-dev
  # config file parser (header-only toml++), seccomp launcher for the
  # sandbox test (tests/tools/seccomp_exec.cc)
  libtomlplusplus-dev libseccomp-dev
  # object-store backend (daemon/storage/s3_client.cc): libcurl signs SigV4,
  # expat parses the S3 XML replies
  libcurl4-openssl-dev libexpat1-dev
  # a throwaway Ceph RGW for the S3 tests (tests/tools/ceph_cluster.py; no
  # ceph-mgr needed), botocore signs its readiness probe; rclone for bench/
  ceph-mon ceph-osd radosgw ceph-common python3-botocore rclone
  # the Debian package (packaging/, tests/integration/test_package.py):
  # cpack's dpkg-shlibdeps, lintian, man to render the pages; zsh and fish
  # for the completion tests (test_cli_manual.py)
  dpkg-dev lintian man-db zsh fish
  # the verification page's browser tests (tests/integration/test_web_verifier.py):
  # headless Chromium driven by Selenium
  chromium chromium-driver python3-selenium
)
# Node.js runs sigstore-js (tests/js, test_sigstore_bundle.py). The machine
# image ships a Node.js 20 as "nodejs" with npm; elsewhere take Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# sigstore-js for the Sigstore bundle test, exactly as pinned (with integrity
# hashes) in tests/js/package-lock.json.
js_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/js"
if [[ ! -d "$js_dir/node_modules/@sigstore/verify" || "$js_dir/package-lock.json" -nt "$js_dir/node_modules" ]]; then
  echo "install-deps: npm ci in tests/js" >&2
  (cd "$js_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
