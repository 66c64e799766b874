// `shredctl web-verifier [-o FILE]`: writes the self-contained verification
// page (docs/VERIFY.md). The page's source is client/web/; the build inlines
// it, with the vendored libraries, into one HTML file
// (client/web/build_page.cmake) whose bytes are compiled into shredctl.
#ifndef SHREDD_CLIENT_WEB_VERIFIER_H_
#define SHREDD_CLIENT_WEB_VERIFIER_H_

#include <string_view>

#include "client/cli_common.h"

namespace shredd::cli {

// The page, byte for byte (generated web_page.cc).
std::string_view WebVerifierPage();

// Registers `web-verifier`.
void AddWebVerifierCommand(Commands c);

}  // namespace shredd::cli

#endif  // SHREDD_CLIENT_WEB_VERIFIER_H_
