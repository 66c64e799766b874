// shredctl: the CLI for shredd. See README.md and docs/CLI.md.
#include "client/cli.h"

int main(int argc, char** argv) { return shredd::cli::Run(argc, argv); }
