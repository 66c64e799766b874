// Fuzz target: verify::ParseStrictJson, the parser of envelopes, statements
// and receipts.
// Properties, checked against nlohmann's own (lax) parser:
//  * what the strict parser accepts has no NUL byte, the lax parser accepts
//    it too and reads the same value (one reading per file);
//  * what the lax parser accepts and the strict one refuses, without a NUL,
//    is refused for a duplicate member;
//  * nothing appended after an accepted document is accepted.
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/strict_json.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  using nlohmann::json;
  const std::string_view input = fuzz::AsView(data, size);
  auto strict = verify::ParseStrictJson(input, "input");
  const json lax = json::parse(input.begin(), input.end(), nullptr, /*allow_exceptions=*/false);
  const bool has_nul = input.find('\0') != std::string_view::npos;
  if (strict.ok()) {
    FUZZ_CHECK(!has_nul);
    FUZZ_CHECK(!lax.is_discarded());
    FUZZ_CHECK(lax == *strict);
    FUZZ_CHECK(!verify::ParseStrictJson(std::string(input) + std::string("\0{}", 3), "input").ok());
    FUZZ_CHECK(!verify::ParseStrictJson(std::string(input) + " x", "input").ok());
    return 0;
  }
  if (!lax.is_discarded() && !has_nul) {
    const std::string_view message(strict.status().message().data(), strict.status().message().size());
    FUZZ_CHECK(message.find("duplicate member") != std::string_view::npos);
  }
  return 0;
}
