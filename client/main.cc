// shredctl: the CLI for shredd. See README.md and docs/CLI.md.
#include "client/cli.h"

#if defined(SHREDD_WITH_JEMALLOC)
#include "daemon/base/jemalloc_conf.h"
// The daemon's allocator options: gRPC's receive buffers reused, not faulted
// in afresh (daemon/app/memory.h).
SHREDD_DEFINE_JEMALLOC_CONF()
#endif

int main(int argc, char** argv) { return shredd::cli::Run(argc, argv); }
