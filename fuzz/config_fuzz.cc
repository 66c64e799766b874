// Fuzz target: the daemon's TOML config (shredd::LoadConfigFromString,
// daemon/config/config.h, over toml++), then ValidateConfig without touching files,
// KeysNeedingRestart against the defaults, and the single-value checks the
// flag parser shares (listen, vault, metrics, host:port, log format) on the
// raw input.
// Properties (documented in config.h): an accepted config only grants known
// roles, each at most once per grant and never an empty list; no uid has
// two grants after validation; every TLS grant names a subject or a SAN.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "daemon/config/config.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  const std::string_view input = fuzz::AsView(data, size);
  (void)CheckListenSpec(input);
  (void)CheckVaultSpec(input);
  (void)CheckMetricsListen(input);
  (void)ParseLogFormat(input);
  std::string host;
  uint16_t port = 0;
  (void)SplitHostPort(input, &host, &port);
  (void)IsLoopbackHost(input);

  auto c = LoadConfigFromString(input, "fuzz.toml");
  if (!c.ok()) {
    FUZZ_CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  auto check_roles = [](const std::vector<std::string>& roles) {
    FUZZ_CHECK(!roles.empty());
    std::set<std::string> seen;
    for (const auto& r : roles) {
      FUZZ_CHECK(IsRoleName(r));
      FUZZ_CHECK(seen.insert(r).second);
    }
  };
  for (const auto& g : c->local_roles) check_roles(g.roles);
  for (const auto& g : c->tls_roles) {
    check_roles(g.roles);
    FUZZ_CHECK(!g.subject.empty() || !g.san.empty());
  }
  if (ValidateConfig(*c, /*check_files=*/false).ok()) {
    std::set<uint32_t> uids;
    for (const auto& g : c->local_roles) FUZZ_CHECK(uids.insert(g.uid).second);
    for (const auto& l : c->listen) FUZZ_CHECK(CheckListenSpec(l).ok());
  }
  (void)KeysNeedingRestart(DaemonConfig{}, *c);
  FUZZ_CHECK(KeysNeedingRestart(*c, *c).empty());
  return 0;
}
