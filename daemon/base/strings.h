// String helpers. Debian's Abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0,
// so absl::string_view and std::string_view are distinct types; StrCat here
// accepts both.
#ifndef SHREDD_DAEMON_BASE_STRINGS_H_
#define SHREDD_DAEMON_BASE_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace shredd {

inline absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view StdView(absl::string_view s) { return std::string_view(s.data(), s.size()); }

namespace strings_internal {
template <typename T>
decltype(auto) Arg(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return AbslView(v);
  } else {
    return (v);
  }
}
}  // namespace strings_internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(strings_internal::Arg(args)...);
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  absl::StrAppend(out, strings_internal::Arg(args)...);
}

}  // namespace shredd

#endif  // SHREDD_DAEMON_BASE_STRINGS_H_
