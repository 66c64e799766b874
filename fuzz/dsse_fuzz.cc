// Fuzz target: DSSE envelope JSON (verify::ParseEnvelope), the first thing a
// verifier does with a certificate it was handed.
// Property: whatever parses survives SerializeEnvelope -> ParseEnvelope
// unchanged, and PAE lengths are consistent; and it has one reading only:
// no NUL byte, and nothing can be appended to it (a NUL and a second
// document, or any other non-whitespace) and still parse.
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/dsse.h"
#include "fuzz/fuzz_fixture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shredd;
  auto env = verify::ParseEnvelope(fuzz::AsView(data, size));
  if (!env.ok()) return 0;
  FUZZ_CHECK(!env->signatures.empty());
  const std::string_view input = fuzz::AsView(data, size);
  FUZZ_CHECK(input.find('\0') == std::string_view::npos);
  FUZZ_CHECK(!verify::ParseEnvelope(std::string(input) + std::string("\0{}", 3)).ok());
  FUZZ_CHECK(!verify::ParseEnvelope(std::string(input) + " {}").ok());
  FUZZ_CHECK(verify::ParseEnvelope(std::string(input) + "\n").ok());
  const std::string again = verify::SerializeEnvelope(*env);
  auto env2 = verify::ParseEnvelope(again);
  FUZZ_CHECK(env2.ok());
  FUZZ_CHECK(env2->payload_type == env->payload_type);
  FUZZ_CHECK(env2->payload == env->payload);
  FUZZ_CHECK(env2->signatures.size() == env->signatures.size());
  for (size_t i = 0; i < env->signatures.size(); ++i) {
    FUZZ_CHECK(env2->signatures[i].keyid == env->signatures[i].keyid);
    FUZZ_CHECK(env2->signatures[i].sig == env->signatures[i].sig);
  }
  FUZZ_CHECK(verify::SerializeEnvelope(*env2) == again);
  const std::string pae = verify::PreAuthEncoding(env->payload_type, env->payload);
  FUZZ_CHECK(pae.size() > env->payload_type.size() + env->payload.size() + 8);
  return 0;
}
