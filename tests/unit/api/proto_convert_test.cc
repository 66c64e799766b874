// proto_convert (daemon/proto_convert.h): the API messages and the domain
// types round-trip, and malformed input is INVALID_ARGUMENT with a reason.
#include "daemon/api/proto_convert.h"

#include <string>

#include <gtest/gtest.h>

#include "daemon/crypto/digest.h"

namespace shredd {
namespace {

const std::string kHex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

TEST(ProtoConvertTest, DigestsRoundTripAndBadOnesAreRefused) {
  v1::Digest d;
  d.set_hash("sha256:" + kHex);
  d.set_size_bytes(4);
  auto got = FromProto(d);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size, 4u);
  v1::Digest back;
  ToProto(*got, &back);
  EXPECT_EQ(back.hash(), "sha256:" + kHex);
  EXPECT_EQ(back.size_bytes(), 4);

  for (const std::string& bad : {std::string(""), "sha256:" + kHex.substr(1), "md5:" + kHex,
                                 "sha256:" + std::string(64, 'G'), "sha256:" + kHex + "00"}) {
    v1::Digest b;
    b.set_hash(bad);
    EXPECT_EQ(FromProto(b).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  d.set_size_bytes(-1);
  auto negative = FromProto(d);
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("negative size -1"), std::string::npos) << negative.status();
}

TEST(ProtoConvertTest, MetadataRoundTripsThroughItemInfo) {
  v1::ItemMetadata m;
  m.set_kind(v1::KIND_MODEL);
  m.add_subject_ids("alice");
  m.add_subject_ids("bob");
  m.add_datasets("train");
  (*m.mutable_labels())["team"] = "vision";
  m.set_name("weights.bin");
  auto meta = FromProto(m);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->kind, ItemKind::kModel);
  EXPECT_EQ(meta->subject_ids, (std::vector<std::string>{"alice", "bob"}));
  ItemInfo info;
  info.digest = ContentDigest{Sha256Hasher::Of("test"), 4};
  info.metadata = *meta;
  info.stored_unix_nanos = 1234;
  v1::ItemInfo out;
  ToProto(info, &out);
  EXPECT_EQ(out.digest().hash(), "sha256:" + kHex);
  EXPECT_EQ(out.metadata().kind(), v1::KIND_MODEL);
  EXPECT_EQ(out.metadata().subject_ids_size(), 2);
  EXPECT_EQ(out.metadata().labels().at("team"), "vision");
  EXPECT_EQ(out.metadata().name(), "weights.bin");
  EXPECT_EQ(out.stored_unix_nanos(), 1234);

  v1::ItemMetadata unspecified;  // an unset kind is a photo
  EXPECT_EQ(FromProto(unspecified)->kind, ItemKind::kPhoto);
  v1::ItemMetadata unknown;
  unknown.set_kind(static_cast<v1::Kind>(42));
  EXPECT_EQ(FromProto(unknown).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ProtoConvertTest, LineageNeedsATypeAndATarget) {
  google::protobuf::RepeatedPtrField<v1::LineageEdge> edges;
  auto* to_dataset = edges.Add();
  to_dataset->set_type(v1::LineageEdge::TRAINED_ON);
  to_dataset->set_dataset("train");
  to_dataset->set_relation("pre-training");
  auto* to_model = edges.Add();
  to_model->set_type(v1::LineageEdge::DERIVED_FROM);
  to_model->mutable_digest()->set_hash("sha256:" + kHex);
  auto got = LineageFromProto(edges);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].dataset, "train");
  EXPECT_EQ((*got)[0].relation, "pre-training");
  EXPECT_EQ((*got)[1].type, EdgeType::kDerivedFrom);
  EXPECT_EQ((*got)[1].digest, Sha256Hasher::Of("test"));

  google::protobuf::RepeatedPtrField<v1::LineageEdge> untyped;
  untyped.Add()->set_dataset("train");
  EXPECT_EQ(LineageFromProto(untyped).status().code(), absl::StatusCode::kInvalidArgument);
  google::protobuf::RepeatedPtrField<v1::LineageEdge> no_target;
  no_target.Add()->set_type(v1::LineageEdge::TRAINED_ON);
  auto s = LineageFromProto(no_target).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("a dataset or a digest"), std::string::npos) << s;
  google::protobuf::RepeatedPtrField<v1::LineageEdge> bad_digest;
  auto* e = bad_digest.Add();
  e->set_type(v1::LineageEdge::DERIVED_FROM);
  e->mutable_digest()->set_hash("sha256:nothex");
  EXPECT_EQ(LineageFromProto(bad_digest).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace shredd
