// Text that came from outside (a daemon reply, a certificate, a user's
// argument) and is about to be shown to a person: in a terminal, a log line
// or an error message. One rule, used by shredctl when it prints and by the
// daemon when it checks free-text fields and quotes bad input
// (docs/FORMATS.md, "Text fields").
//
// A character is unsafe to show if it is
//  * not well-formed UTF-8 (overlong forms, surrogates, > U+10FFFF, cut off),
//  * a control character: C0 (U+0000-U+001F, including newline and tab),
//    DEL (U+007F) or C1 (U+0080-U+009F; U+009B is a CSI on some terminals),
//  * a bidirectional formatting character (U+200E, U+200F, U+202A-U+202E,
//    U+2066-U+2069), which reorders what follows it on screen, or
//  * a line or paragraph separator (U+2028, U+2029).
#ifndef SHREDD_FORMATS_TEXT_H_
#define SHREDD_FORMATS_TEXT_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace shredd::verify {

// The byte offset of the first unsafe character of `s`, or nullopt.
std::optional<size_t> FindUnsafeText(std::string_view s);

// `s` with every unsafe character escaped: "\n", "\r", "\t", "\xNN" for
// other control bytes and bytes that are not UTF-8, "\u{XXXX}" for unsafe
// code points above U+007F. Safe to write to a terminal; one line.
std::string EscapeText(std::string_view s);

// For error messages: at most `max_bytes` of `s`, escaped and in double
// quotes, followed by "... (N bytes)" if `s` was longer. Never echoes
// unbounded input.
std::string QuoteText(std::string_view s, size_t max_bytes = 40);

// `s` safe inside XML or HTML text and attribute values: & < > " ' as
// character references (&amp; &lt; &gt; &quot; &apos;), nothing else changed.
// Used for S3 request bodies and shredctl's HTML report.
std::string MarkupEscape(std::string_view s);

}  // namespace shredd::verify

#endif  // SHREDD_FORMATS_TEXT_H_
