// The subjectAltName of a [[roles.tls]] grant (or --grant-tls san:...): one
// SAN of one type. A grant's SAN matches only a certificate SAN of the same
// type (daemon/api/auth.h, SanMatches): an e-mail or URI SAN that a CA lets
// its users choose must not pass for a DNS name. docs/CONFIG.md
// "[[roles.tls]]" has the rules.
#ifndef SHREDD_DAEMON_CONFIG_SAN_GRANT_H_
#define SHREDD_DAEMON_CONFIG_SAN_GRANT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shredd {

enum class SanType { kDns, kUri, kEmail, kIp };
struct SanName {
  SanType type = SanType::kDns;
  std::string value;
};
std::string_view SanTypeName(SanType type);  // "dns", "uri", "email", "ip"

// "dns:NAME", "uri:URI", "email:ADDRESS" or "ip:ADDRESS" (prefix in any
// case), or an untyped value whose type follows from its shape: "://" in it:
// URI; "@": e-mail; an IPv4 or IPv6 address: IP; another ':' (urn:...): URI;
// else a DNS name. INVALID_ARGUMENT naming the problem for an empty value,
// spaces or control characters, an ip: that is not an address, a DNS name
// with characters no DNS name has, an e-mail without '@' or a URI without ':'.
absl::StatusOr<SanName> ParseSanGrant(std::string_view san);

}  // namespace shredd

#endif  // SHREDD_DAEMON_CONFIG_SAN_GRANT_H_
