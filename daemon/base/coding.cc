#include "daemon/base/coding.h"

namespace shredd {

std::string FormatRfc3339(absl::Time t, TimePrecision precision) {
  return absl::FormatTime(precision == TimePrecision::kMillis ? "%Y-%m-%dT%H:%M:%E3SZ" : "%Y-%m-%dT%H:%M:%SZ", t,
                          absl::UTCTimeZone());
}

}  // namespace shredd
