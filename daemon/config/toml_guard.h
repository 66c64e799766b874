// Guards the TOML parser (toml++ 3.3.0, Debian 12) against its known
// undefined behaviour: any non-ASCII character where the parser tests for
// whitespace — outside strings and comments, right after a backslash in a
// multi-line basic string, or after a line-ending backslash — reaches
// __builtin_unreachable() in toml::impl::is_non_ascii_horizontal_whitespace
// (upstream marzer/tomlplusplus#190 and #295, fixed by #305; found here by
// fuzz/config_fuzz.cc under UBSan). Such input is invalid TOML anyway, except
// the exotic `"""\<newline>§` case, which is refused too.
#ifndef SHREDD_DAEMON_CONFIG_TOML_GUARD_H_
#define SHREDD_DAEMON_CONFIG_TOML_GUARD_H_

#include <string_view>

#include "absl/status/status.h"

namespace shredd {

// OK if `text` has no non-ASCII byte in a position where toml++ 3.3.0 would
// classify it as whitespace; otherwise INVALID_ARGUMENT "SOURCE:LINE: ...".
// Pure ASCII passes at once. Otherwise a copy with each non-ASCII byte
// replaced by '?' (legal only inside strings and comments) is parsed first:
// a syntax error there is returned as is; then multi-line basic strings are
// checked for the escape case.
absl::Status CheckTomlForParserHazards(std::string_view text, std::string_view source);

}  // namespace shredd

#endif  // SHREDD_DAEMON_CONFIG_TOML_GUARD_H_
