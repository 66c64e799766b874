"""Calls every RPC of every shredd service once, with an empty request, and
reports the status code of each. test_auth.py uses it in-process (over TLS)
and as a script under another uid (over the unix socket):

    python3 auth_sweep.py unix:/path/to/shredd.sock   -> JSON {method: [code, details]}

An empty request is enough: authorization comes before any validation, so a
caller without the method's role must get PERMISSION_DENIED and nothing else.
"""
import json
import os
import sys

PY_GEN = os.environ.get("SHREDD_PY_GEN")
if PY_GEN:
    sys.path.insert(0, PY_GEN)

import grpc  # noqa: E402
from google.protobuf import symbol_database  # noqa: E402
from shredd.v1 import log_pb2, log_pb2_grpc, orders_pb2, orders_pb2_grpc  # noqa: E402
from shredd.v1 import shredd_pb2, shredd_pb2_grpc  # noqa: E402

MODULES = [(shredd_pb2, shredd_pb2_grpc), (orders_pb2, orders_pb2_grpc), (log_pb2, log_pb2_grpc)]


def all_methods():
    """[(full name "/shredd.v1.Store/Put", service name, method name, pb2_grpc module)]"""
    out = []
    for pb2, pb2_grpc in MODULES:
        for sname, sdesc in pb2.DESCRIPTOR.services_by_name.items():
            for m in sdesc.methods:
                out.append(("/%s/%s" % (sdesc.full_name, m.name), sname, m, pb2_grpc))
    return out


def call(channel, sname, mdesc, pb2_grpc, timeout=10):
    stub = getattr(pb2_grpc, sname + "Stub")(channel)
    fn = getattr(stub, mdesc.name)
    req = symbol_database.Default().GetSymbol(mdesc.input_type.full_name)()
    try:
        if isinstance(fn, grpc.StreamUnaryMultiCallable):
            fn(iter([req]), timeout=timeout)
        elif isinstance(fn, grpc.UnaryStreamMultiCallable):
            for _ in fn(req, timeout=timeout):
                pass
        elif isinstance(fn, grpc.StreamStreamMultiCallable):
            for _ in fn(iter([req]), timeout=timeout):
                pass
        else:
            fn(req, timeout=timeout)
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, e.details() or ""


def sweep(channel):
    return {full: list(call(channel, s, m, mod)) for full, s, m, mod in all_methods()}


if __name__ == "__main__":
    ch = grpc.insecure_channel(sys.argv[1])
    print(json.dumps(sweep(ch)))
