"""Upload and download messages as raw gRPC bytes (issue 17: the daemon reads
Put and writes Get without protobuf's copies, daemon/api/raw_messages.h): every
valid encoding of a PutRequest stores what protobuf decodes, bytes that are no
PutRequest are refused with nothing stored, and downloads parse as
GetResponses."""
import unittest

import test_faults
from harness import pb, sha256_digest, varint
from test_faults import CHUNK, INLINE_MAX, IA, data_msgs, dmsg, header, rand


class WireEncodingTest(test_faults.FaultTest):
    """The daemon reads upload messages as raw bytes (daemon/api/raw_messages.h):
    data in protobuf's usual encoding straight from gRPC's buffers, any other
    valid encoding through protobuf's parser, so both must store what
    protobuf decodes; bytes that are no PutRequest are refused and nothing is
    stored. Downloads are framed by hand the same way: protobuf must parse
    them."""

    def raw_put(self, raws):
        call = self.d.channel().stream_unary("/shredd.v1.Store/Put", request_serializer=lambda b: b,
                                             response_deserializer=pb.PutResponse.FromString)
        return call(iter(raws), timeout=60)

    def data_field(self, data):
        return b"\x12" + varint(len(data)) + data

    def test_every_valid_encoding_stores_what_protobuf_decodes(self):
        a, b, c = rand(CHUNK + 5), rand(INLINE_MAX), rand(3000)
        raws = [
            self.data_field(a),                           # as protobuf writes it
            self.data_field(b"x" * 10) + self.data_field(b),  # the field twice: the last one counts
            self.data_field(c) + b"\x78\x01",            # an unknown field after the data
            b"\x12\x80\x00",                            # empty data, length in two bytes
            b"",                                          # an empty message: no data
        ]
        decoded = b"".join(pb.PutRequest.FromString(r).data for r in raws)
        self.assertEqual(decoded, a + b + c)
        h = sha256_digest(decoded)
        head = pb.PutRequest(header=pb.PutHeader(digest=dmsg("", len(decoded)),
                                                 metadata=pb.ItemMetadata(kind=pb.KIND_MODEL))).SerializeToString()
        trailer = pb.PutRequest(trailer=pb.PutTrailer(digest=dmsg(h, len(decoded)))).SerializeToString()
        r = self.raw_put([head] + raws + [trailer])
        self.assertEqual(r.digest.hash, h)
        self.assertEqual(self.get_all(h)[0], decoded)

    def test_bytes_that_are_no_put_request_are_refused(self):
        data = rand(INLINE_MAX + 100)
        h = sha256_digest(data)
        head = pb.PutRequest(header=pb.PutHeader(digest=dmsg(h, len(data)),
                                                 metadata=pb.ItemMetadata(kind=pb.KIND_MODEL))).SerializeToString()
        cases = {
            "length beyond the message": [head, b"\x12\x05abc"],
            "truncated varint": [head, self.data_field(data), b"\x12\xff"],
            "a header that is not one": [b"\x0a\x03\xff\xff\xff"],
        }
        for name, raws in cases.items():
            with self.subTest(case=name):
                e = self.assertRpcError(IA, self.raw_put, raws)
                self.assertIn("not a valid PutRequest", e.details())
                self.assertNotStored(h)
        self.wait_until(lambda: self.part_files() == [], "tmp/ to be empty")

    def test_downloads_parse_as_get_responses(self):
        data = rand(2 * CHUNK + 11)
        h = sha256_digest(data)
        self.d.store().Put(iter([header(h, len(data))] + data_msgs(data)), timeout=60)
        for offset, limit in ((0, 0), (CHUNK - 3, 10), (len(data), 0)):
            with self.subTest(offset=offset, limit=limit):
                msgs = list(self.d.store().Get(pb.GetRequest(digest=dmsg(h), offset=offset, limit=limit)))
                self.assertEqual(msgs[0].total_size, len(data))
                self.assertTrue(all(m.total_size == 0 for m in msgs[1:]))
                want = data[offset:offset + limit] if limit else data[offset:]
                self.assertEqual(b"".join(m.data for m in msgs), want)
        empty = sha256_digest(b"")
        self.d.store().Put(iter([header(empty, 0)]), timeout=60)
        msgs = list(self.d.store().Get(pb.GetRequest(digest=dmsg(empty))))
        self.assertEqual([(m.data, m.total_size) for m in msgs], [(b"", 0)])


if __name__ == "__main__":
    unittest.main()
