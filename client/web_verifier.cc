#include "client/web_verifier.h"

#include <iostream>
#include <string>

#include "client/file_io.h"

namespace shredd::cli {

void AddWebVerifierCommand(Commands c) {
  static std::string out;
  auto* cmd = c.app.add_subcommand(
      "web-verifier", "write the self-contained verification page (HTML; checks certificates in a browser, offline)");
  cmd->add_option("-o,--output", out, "write to FILE (default: stdout)");
  cmd->callback([&action = c.action] {
    action = [] {
      if (out.empty()) {
        std::cout << WebVerifierPage() << std::flush;
        if (!std::cout) throw Failure{kFail, "cannot write the page to stdout", ""};
      } else {
        WriteFileOrThrow(out, WebVerifierPage(), Privacy::kPublic);
      }
      return kOk;
    };
  });
}

}  // namespace shredd::cli
