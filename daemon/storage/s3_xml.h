// A small element tree of an S3 XML reply, built with expat. Namespaces are
// dropped (S3 replies use one default namespace); text is the concatenated
// character data of an element. Replies are bounded (a page of at most 1000
// entries), so a tree is fine.
#ifndef SHREDD_DAEMON_STORAGE_S3_XML_H_
#define SHREDD_DAEMON_STORAGE_S3_XML_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

#include "formats/text.h"

namespace shredd {

struct XmlElement {
  std::string name;  // local name, without namespace
  std::string text;
  std::vector<std::unique_ptr<XmlElement>> children;

  // The first child named `name`, or nullptr.
  const XmlElement* Child(std::string_view child) const;
  // The text of the first child named `name`, or "".
  std::string ChildText(std::string_view child) const;
};

// INVALID_ARGUMENT if `xml` is not well-formed or nests deeper than 32.
absl::StatusOr<std::unique_ptr<XmlElement>> ParseXml(std::string_view xml);

// Escapes & < > " ' for element text (one home: verify::MarkupEscape).
inline std::string XmlEscape(std::string_view text) { return verify::MarkupEscape(text); }

}  // namespace shredd

#endif  // SHREDD_DAEMON_STORAGE_S3_XML_H_
