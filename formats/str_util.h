// Internal to shredd_formats (not part of its API).
//
// Debian's Abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0, so
// absl::string_view is a distinct type that std::string_view does not
// convert to. These helpers bridge the two.

#ifndef SHREDD_FORMATS_STR_UTIL_H_
#define SHREDD_FORMATS_STR_UTIL_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace shredd::verify::internal {

inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

template <typename T>
decltype(auto) CatArg(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return Sv(v);
  } else {
    return (v);
  }
}

// absl::StrCat that also accepts std::string_view arguments.
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(CatArg(args)...);
}

}  // namespace shredd::verify::internal

#endif  // SHREDD_FORMATS_STR_UTIL_H_
