package main

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// unescape removes emulation prevention bytes (00 00 03 -> 00 00).
func unescape(b []byte) []byte {
	var out []byte
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

func TestSEICarriesTheTrailer(t *testing.T) {
	const capture, id = uint64(0x0006_0000_ffff_fc00), uint32(0xfffffffe)
	sei := seiNAL(capture, id)
	if !bytes.HasPrefix(sei, []byte{0, 0, 0, 1, 6, 5}) {
		t.Fatalf("not an SEI user_data_unregistered: % x", sei[:6])
	}
	rbsp := unescape(sei[5:])
	if bytes.Contains(sei[5:], []byte{0, 0, 0}) || bytes.Contains(sei[5:], []byte{0, 0, 1}) {
		t.Fatalf("start code emulated inside the SEI: % x", sei)
	}
	size := int(rbsp[1])
	payload := rbsp[2 : 2+size]
	if !bytes.Equal(payload[:16], seiUUID) {
		t.Fatalf("uuid % x", payload[:16])
	}
	tr := payload[16:]
	if string(tr[len(tr)-4:]) != "LKTS" || int(^tr[len(tr)-5]) != len(tr) {
		t.Fatalf("trailer % x", tr)
	}
	if got := ^binary.BigEndian.Uint64(tr[2:10]); got != capture {
		t.Fatalf("capture %x", got)
	}
	if got := ^binary.BigEndian.Uint32(tr[12:16]); got != id {
		t.Fatalf("frame id %x", got)
	}
	// The access unit ends in the raw trailer too: "LKTS" last, its length before it.
	if string(sei[len(sei)-4:]) != "LKTS" || len(rbsp) != 2+size {
		t.Fatalf("SEI does not end with the trailer: % x", sei)
	}
}

func TestNoMetadataNoSEI(t *testing.T) {
	if seiNAL(0, 0) != nil {
		t.Fatal("empty trailer made an SEI")
	}
}
