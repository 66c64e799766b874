// tiles_verify.go: checks a C2SP tlog-tiles directory written by shredd
// (--log-tiles-dir) with Go's golang.org/x/mod/sumdb/note and sumdb/tlog
// only (no shredd code). Debian: golang-go golang-golang-x-mod-dev.
//
//	GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= go run tiles_verify.go VKEY_FILE TILES_DIR [OLD_CHECKPOINT]
//
// It checks, exit 0 and "OK ..." on success, exit 1 and the reason otherwise:
//   - the checkpoint file verifies under the key and its origin is the key name;
//   - tlog.TileHashReader over the hash tiles (which authenticates every tile
//     it reads against the checkpoint's root) gives tlog.TreeHash = the root;
//   - every entry bundle parses (big-endian uint16 length + bytes) and holds
//     exactly its tile's entries, each hashing (tlog.RecordHash) to the leaf
//     hash the level-0 tile holds;
//   - every tile the tree needs, rebuilt by tlog.ReadTileData from hashes
//     computed by tlog.StoredHashes over the entries alone, equals the file
//     byte for byte (full tiles, and the rightmost partial tile of each level);
//   - with OLD_CHECKPOINT: tlog.ProveTree over the tiles proves that the
//     current tree extends the old one (tlog.CheckTree).
//
// Go's tile paths carry the height ("tile/8/0/x001/234.p/5", "tile/8/data/...");
// C2SP's do not ("tile/0/x001/234.p/5", "tile/entries/..."): that is the only
// translation made here.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tiles_verify (Go): "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return b
}

func openCheckpoint(v note.Verifier, msg []byte) checkpoint {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		fail("checkpoint has %d lines", len(lines))
	}
	if lines[0] != v.Name() {
		fail("checkpoint origin %q is not the key name %q", lines[0], v.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("bad tree size %q", lines[1])
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("bad root hash %q: %v", lines[2], err)
	}
	return checkpoint{lines[0], size, root}
}

// c2spPath maps Go's tile path to the C2SP one.
func c2spPath(t tlog.Tile) string {
	p := t.Path()
	p = strings.Replace(p, fmt.Sprintf("tile/%d/data/", height), "tile/entries/", 1)
	return strings.Replace(p, fmt.Sprintf("tile/%d/", height), "tile/", 1)
}

// dirTiles is a tlog.TileReader over a directory.
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return height }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// memHashes is a tlog.HashReader over stored hashes computed here.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("hash %d not computed", x)
		}
		out[i] = m[x]
	}
	return out, nil
}

func parseBundle(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("truncated length prefix")
		}
		n := int(b[0])<<8 | int(b[1])
		b = b[2:]
		if len(b) < n {
			return nil, fmt.Errorf("entry %d truncated", len(out))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

func main() {
	if len(os.Args) != 3 && len(os.Args) != 4 {
		fail("usage: tiles_verify VKEY_FILE TILES_DIR [OLD_CHECKPOINT]")
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(read(os.Args[1]))))
	if err != nil {
		fail("verifier key: %v", err)
	}
	dir := os.Args[2]
	cp := openCheckpoint(v, read(filepath.Join(dir, "checkpoint")))
	thr := tlog.TileHashReader(tlog.Tree{N: cp.size, Hash: cp.root}, dirTiles{dir})

	// The tree hash from the tiles (TileHashReader authenticates each tile).
	if cp.size > 0 {
		th, err := tlog.TreeHash(cp.size, thr)
		if err != nil {
			fail("tree hash from the tiles: %v", err)
		}
		if th != cp.root {
			fail("tree hash from the tiles %v != checkpoint root %v", th, cp.root)
		}
	}

	// Entry bundles: each entry hashes to its level-0 tile hash.
	var entries [][]byte
	for n := int64(0); n*(1<<height) < cp.size; n++ {
		w := cp.size - n*(1<<height)
		if w > 1<<height {
			w = 1 << height
		}
		t := tlog.Tile{H: height, L: -1, N: n, W: int(w)}
		b, err := os.ReadFile(filepath.Join(dir, c2spPath(t)))
		if err != nil {
			fail("entry bundle: %v", err)
		}
		es, err := parseBundle(b)
		if err != nil {
			fail("entry bundle %s: %v", c2spPath(t), err)
		}
		if int64(len(es)) != w {
			fail("entry bundle %s holds %d entries, expected %d", c2spPath(t), len(es), w)
		}
		idx := make([]int64, w)
		for i := range idx {
			idx[i] = tlog.StoredHashIndex(0, n*(1<<height)+int64(i))
		}
		leaves, err := thr.ReadHashes(idx)
		if err != nil {
			fail("level-0 hashes of bundle %s: %v", c2spPath(t), err)
		}
		for i, e := range es {
			if tlog.RecordHash(e) != leaves[i] {
				fail("entry %d of bundle %s does not hash to its leaf", i, c2spPath(t))
			}
		}
		entries = append(entries, es...)
	}

	// Every tile, rebuilt from the entries alone, equals the file.
	var stored memHashes
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, stored)
		if err != nil {
			fail("stored hashes of entry %d: %v", i, err)
		}
		stored = append(stored, hs...)
	}
	final := map[[2]int64]tlog.Tile{}
	for _, t := range tlog.NewTiles(height, 0, cp.size) {
		k := [2]int64{int64(t.L), t.N}
		if old, ok := final[k]; !ok || t.W > old.W {
			final[k] = t
		}
	}
	for _, t := range final {
		want, err := tlog.ReadTileData(t, stored)
		if err != nil {
			fail("tile %s: %v", c2spPath(t), err)
		}
		got, err := os.ReadFile(filepath.Join(dir, c2spPath(t)))
		if err != nil {
			fail("tile: %v", err)
		}
		if !bytes.Equal(got, want) {
			fail("tile %s differs from the one rebuilt from the entries", c2spPath(t))
		}
	}

	if len(os.Args) == 4 {
		old := openCheckpoint(v, read(os.Args[3]))
		if old.size > cp.size {
			fail("old checkpoint size %d is beyond the tiles' %d", old.size, cp.size)
		}
		if old.size > 0 {
			proof, err := tlog.ProveTree(cp.size, old.size, thr)
			if err != nil {
				fail("consistency proof from the tiles: %v", err)
			}
			if err := tlog.CheckTree(proof, cp.size, cp.root, old.size, old.root); err != nil {
				fail("tree of size %d does not extend tree of size %d: %v", cp.size, old.size, err)
			}
		}
		fmt.Printf("OK consistency %d -> %d\n", old.size, cp.size)
	}
	fmt.Printf("OK tiles %s size %d root %v tiles %d entries %d\n", cp.origin, cp.size, cp.root, len(final), len(entries))
}
