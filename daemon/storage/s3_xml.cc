#include "daemon/storage/s3_xml.h"

#include <expat.h>

#include "daemon/base/strings.h"

namespace shredd {
namespace {

constexpr size_t kMaxDepth = 32;

struct Builder {
  std::unique_ptr<XmlElement> root;
  std::vector<XmlElement*> stack;
  bool too_deep = false;
  XML_Parser parser = nullptr;
};

void OnStart(void* data, const XML_Char* name, const XML_Char** /*attrs*/) {
  auto* b = static_cast<Builder*>(data);
  if (b->stack.size() >= kMaxDepth) {
    b->too_deep = true;
    XML_StopParser(b->parser, XML_FALSE);
    return;
  }
  auto e = std::make_unique<XmlElement>();
  std::string_view n(name);
  // With namespace processing, names come as "URI|local".
  if (size_t bar = n.rfind('|'); bar != std::string_view::npos) n.remove_prefix(bar + 1);
  e->name = std::string(n);
  XmlElement* raw = e.get();
  if (b->stack.empty()) {
    b->root = std::move(e);
  } else {
    b->stack.back()->children.push_back(std::move(e));
  }
  b->stack.push_back(raw);
}

void OnEnd(void* data, const XML_Char* /*name*/) { static_cast<Builder*>(data)->stack.pop_back(); }

void OnText(void* data, const XML_Char* s, int len) {
  auto* b = static_cast<Builder*>(data);
  if (!b->stack.empty()) b->stack.back()->text.append(s, static_cast<size_t>(len));
}

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child) const {
  for (const auto& c : children) {
    if (c->name == child) return c.get();
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child) const {
  const XmlElement* c = Child(child);
  return c == nullptr ? std::string() : c->text;
}

absl::StatusOr<std::unique_ptr<XmlElement>> ParseXml(std::string_view xml) {
  Builder b;
  b.parser = XML_ParserCreateNS(nullptr, '|');
  if (b.parser == nullptr) return absl::ResourceExhaustedError("cannot create an XML parser");
  XML_SetUserData(b.parser, &b);
  XML_SetElementHandler(b.parser, OnStart, OnEnd);
  XML_SetCharacterDataHandler(b.parser, OnText);
  const bool ok = XML_Parse(b.parser, xml.data(), static_cast<int>(xml.size()), XML_TRUE) == XML_STATUS_OK;
  std::string error = ok ? std::string() : XML_ErrorString(XML_GetErrorCode(b.parser));
  const auto line = XML_GetCurrentLineNumber(b.parser);
  XML_ParserFree(b.parser);
  if (b.too_deep) return absl::InvalidArgumentError("XML reply nests too deep");
  if (!ok) return absl::InvalidArgumentError(StrCat("malformed XML reply (line ", line, ": ", error, ")"));
  if (b.root == nullptr) return absl::InvalidArgumentError("empty XML reply");
  return std::move(b.root);
}

}  // namespace shredd
