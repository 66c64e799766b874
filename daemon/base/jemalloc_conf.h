// jemalloc's options for both executables (shredd and shredctl), read at its
// first allocation, before main; MALLOC_CONF in the environment takes
// precedence. Why each option: daemon/app/memory.h.
#ifndef SHREDD_DAEMON_BASE_JEMALLOC_CONF_H_
#define SHREDD_DAEMON_BASE_JEMALLOC_CONF_H_

namespace shredd {

inline constexpr char kJemallocConf[] =
    "narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,lg_extent_max_active_fit:30";

}  // namespace shredd

// Defines jemalloc's malloc_conf as kJemallocConf. Use once per executable,
// at file scope, in a source file of the executable itself.
// NOLINTBEGIN: the name is jemalloc's interface.
#define SHREDD_DEFINE_JEMALLOC_CONF()              \
  extern "C" {                                     \
  extern const char* malloc_conf;                  \
  const char* malloc_conf = shredd::kJemallocConf; \
  }
// NOLINTEND

#endif  // SHREDD_DAEMON_BASE_JEMALLOC_CONF_H_
