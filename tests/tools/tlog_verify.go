// tlog_verify.go: checks shredd's transparency-log artefacts with Go's
// golang.org/x/mod/sumdb/note and sumdb/tlog only (no shredd code), as
// DESIGN.md invariant 5 asks. Debian: golang-go golang-golang-x-mod-dev.
//
// Build/run without modules against Debian's source tree:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS= go run tlog_verify.go ...
//
// Usage (exit 0 and "OK ..." on success; exit 1 and the reason otherwise):
//
//	tlog_verify checkpoint  VKEY_FILE CHECKPOINT_FILE
//	tlog_verify inclusion   VKEY_FILE ENTRY_FILE TLOG_PROOF_FILE
//	tlog_verify consistency VKEY_FILE OLD_CHECKPOINT NEW_CHECKPOINT PROOF_FILE
//
// VKEY_FILE holds a signed-note verifier key whose name is the log origin.
// PROOF_FILE holds one base64 hash per line (a consistency proof).
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tlog_verify (Go): "+format+"\n", args...)
	os.Exit(1)
}

func read(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return b
}

func verifier(path string) note.Verifier {
	v, err := note.NewVerifier(strings.TrimSpace(string(read(path))))
	if err != nil {
		fail("verifier key: %v", err)
	}
	return v
}

// openCheckpoint verifies the signed note and parses the c2sp.org/tlog-checkpoint body.
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

func main() {
	if len(os.Args) < 2 {
		fail("usage: tlog_verify checkpoint|inclusion|consistency ...")
	}
	switch os.Args[1] {
	case "checkpoint":
		if len(os.Args) != 4 {
			fail("usage: checkpoint VKEY CHECKPOINT")
		}
		c := openCheckpoint(verifier(os.Args[2]), read(os.Args[3]))
		fmt.Printf("OK checkpoint %s size %d root %s\n", c.origin, c.size, c.root)

	case "inclusion":
		if len(os.Args) != 5 {
			fail("usage: inclusion VKEY ENTRY TLOG_PROOF")
		}
		v := verifier(os.Args[2])
		entry := read(os.Args[3])
		text := string(read(os.Args[4]))
		// c2sp.org/tlog-proof@v1: header, optional extra, index, hashes, blank line, checkpoint.
		head, cp, found := strings.Cut(text, "\n\n")
		if !found {
			fail("tlog-proof has no blank line before the checkpoint")
		}
		lines := strings.Split(head, "\n")
		if lines[0] != "c2sp.org/tlog-proof@v1" {
			fail("not a tlog-proof: %q", lines[0])
		}
		lines = lines[1:]
		if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
			lines = lines[1:]
		}
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
			fail("tlog-proof has no index line")
		}
		index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
		if err != nil {
			fail("bad index: %v", err)
		}
		var proof tlog.RecordProof
		for _, l := range lines[1:] {
			h, err := tlog.ParseHash(l)
			if err != nil {
				fail("bad proof hash %q", l)
			}
			proof = append(proof, h)
		}
		c := openCheckpoint(v, []byte(cp))
		if err := tlog.CheckRecord(proof, c.size, c.root, index, tlog.RecordHash(entry)); err != nil {
			fail("inclusion of entry %d in tree of size %d: %v", index, c.size, err)
		}
		fmt.Printf("OK inclusion index %d size %d\n", index, c.size)

	case "consistency":
		if len(os.Args) != 6 {
			fail("usage: consistency VKEY OLD NEW PROOF")
		}
		v := verifier(os.Args[2])
		old := openCheckpoint(v, read(os.Args[3]))
		cur := openCheckpoint(v, read(os.Args[4]))
		var proof tlog.TreeProof
		for _, l := range strings.Fields(string(read(os.Args[5]))) {
			h, err := tlog.ParseHash(l)
			if err != nil {
				fail("bad proof hash %q", l)
			}
			proof = append(proof, h)
		}
		if old.size == 0 {
			if len(proof) != 0 {
				fail("a proof from the empty tree must be empty")
			}
		} else if err := tlog.CheckTree(proof, cur.size, cur.root, old.size, old.root); err != nil {
			fail("tree of size %d does not extend tree of size %d: %v", cur.size, old.size, err)
		}
		fmt.Printf("OK consistency %d -> %d\n", old.size, cur.size)

	default:
		fail("unknown command %q", os.Args[1])
	}
}
