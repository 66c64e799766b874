#!/usr/bin/env python3
"""The daemon's layering rule (docs/DESIGN-NOTES.md "Layers"), checked.

Every folder daemon/<layer>/ is one library. A file of a layer may include
its own layer and the layers below it, never one above; no file below
daemon/api may include gRPC or generated protobuf headers (the domain never
sees the wire); the daemon never includes client/ (the CLI); and formats/,
below both, includes neither daemon/, client/ nor gRPC. daemon/main.cc sits
on top and is not checked.

Usage: check_layers.py REPO_ROOT          exit 0 when clean, 1 with one line
                                          per violation otherwise
       check_layers.py --self-test        checks the checker on made-up files
"""
import os
import re
import sys

# Bottom to top; the one place the order is declared (DESIGN-NOTES repeats it).
LAYERS = ["base", "crypto", "storage", "keys", "log", "items", "lineage",
          "shred", "orders", "config", "api", "app"]
RANK = {name: i for i, name in enumerate(LAYERS)}
API = RANK["api"]

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
DAEMON_INCLUDE = re.compile(r"^daemon/([^/]+)/")
# gRPC, its C++ API, protobuf's runtime, and anything generated from proto/.
WIRE = re.compile(r"^(grpc[^/]*/|grpcpp/|google/protobuf/|proto/|shredd/v1/)|\.pb\.h$|\.grpc\.pb\.h$")
SOURCE = re.compile(r"\.(h|hpp|cc|cpp|inc)$")


def violations(rel_path, text):
    """The broken rules of one file, as 'path: reason' lines."""
    parts = rel_path.split("/")
    if parts[0] == "formats":
        return formats_violations(rel_path, text)
    if len(parts) < 3 or parts[0] != "daemon":
        return []
    layer = parts[1]
    if layer not in RANK:
        return [f"{rel_path}: folder daemon/{layer}/ is not a declared layer"]
    found = []
    for bracket, target in INCLUDE.findall(text):
        m = DAEMON_INCLUDE.match(target)
        if bracket == '"' and m:
            dep = m.group(1)
            if dep not in RANK:
                found.append(f"{rel_path}: includes {target}, not in a declared layer")
            elif RANK[dep] > RANK[layer]:
                found.append(f"{rel_path}: layer {layer} includes {target} from layer {dep} above it")
        if bracket == '"' and target.startswith("client/"):
            found.append(f"{rel_path}: the daemon includes {target} from the CLI")
        if RANK[layer] < API and WIRE.search(target):
            found.append(f"{rel_path}: layer {layer} (below api) includes gRPC/protobuf header {target}")
    return found


def formats_violations(rel_path, text):
    """formats/ sits below the daemon and the CLI: it includes neither, nor gRPC."""
    found = []
    for bracket, target in INCLUDE.findall(text):
        if bracket == '"' and target.startswith(("daemon/", "client/")):
            found.append(f"{rel_path}: formats/ includes {target}")
        if WIRE.search(target):
            found.append(f"{rel_path}: formats/ includes gRPC/protobuf header {target}")
    return found


def source_files(root, top):
    for dirpath, _, files in os.walk(os.path.join(root, top)):
        for name in sorted(files):
            if SOURCE.search(name):
                full = os.path.join(dirpath, name)
                yield full, os.path.relpath(full, root).replace(os.sep, "/")


def check_tree(root):
    found = []
    daemon = os.path.join(root, "daemon")
    for entry in sorted(os.listdir(daemon)):
        path = os.path.join(daemon, entry)
        if not os.path.isdir(path):
            if entry not in ("CMakeLists.txt", "main.cc"):
                found.append(f"daemon/{entry}: daemon/ holds only main.cc and the layer folders")
            continue
        for full, rel in source_files(root, os.path.join("daemon", entry)):
            with open(full, encoding="utf-8") as f:
                found += violations(rel, f.read())
    for full, rel in source_files(root, "formats"):
        with open(full, encoding="utf-8") as f:
            found += violations(rel, f.read())
    return found


def self_test():
    """The checker must be able to fail: each bad file below is caught."""
    bad = {
        "daemon/base/x.cc": '#include "daemon/items/item_store.h"\n',
        "daemon/items/y.h": "#include <grpcpp/grpcpp.h>\n",
        "daemon/shred/z.cc": '#include "shredd/v1/shredd.pb.h"\n',
        "daemon/orders/w.cc": "#include <google/protobuf/message.h>\n",
        "daemon/storage/v.cc": '#include "proto/whatever.h"\n',
        "daemon/config/u.cc": '#include "daemon/api/auth.h"\n',
        "daemon/nowhere/t.cc": "\n",
        "daemon/api/s.cc": '#include "client/cli_common.h"\n',
        "formats/r.cc": '#include "daemon/base/strings.h"\n',
        "formats/q.h": "#include <grpcpp/grpcpp.h>\n",
    }
    good = {
        "daemon/items/a.cc": '#include "daemon/base/strings.h"\n#include "daemon/items/item.h"\n'
                             '#include "formats/merkle.h"\n#include <rocksdb/db.h>\n',
        "daemon/api/b.cc": '#include <grpcpp/grpcpp.h>\n#include "daemon/orders/orders.h"\n',
        "daemon/app/c.cc": '#include "daemon/api/auth.h"\n',
        "formats/d.cc": '#include "formats/merkle.h"\n#include <openssl/evp.h>\n',
    }
    ok = True
    for path, text in bad.items():
        if not violations(path, text):
            print(f"self-test: {path} should fail")
            ok = False
    for path, text in good.items():
        if violations(path, text):
            print(f"self-test: {path} should pass: {violations(path, text)}")
            ok = False
    return ok


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return 0 if self_test() else 1
    if len(argv) != 2:
        print(__doc__)
        return 2
    found = check_tree(argv[1])
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} layering violation(s); order, bottom to top: {' < '.join(LAYERS)}")
        return 1
    print(f"layers ok: {' < '.join(LAYERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
