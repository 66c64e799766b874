// shredctl's commands. Run() parses the command line, runs one command and
// returns the process exit code (see docs/CLI.md):
//   0 success, 1 failure, 2 usage error, 3 verification failed,
//   4 not found, 5 daemon unreachable, 6 refused (precondition / already shredded).
#ifndef SHREDD_CLIENT_CLI_H_
#define SHREDD_CLIENT_CLI_H_

namespace shredd::cli {

int Run(int argc, char** argv);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_CLI_H_
