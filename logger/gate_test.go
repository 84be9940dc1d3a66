package logger

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	sm "github.com/lni/dragonboat/v4/statemachine"
)

// TestFencedSourceEncodings: a fence reads the same in both encodings;
// V1 writes it as the "fenced:" address older members read, V2 as a flag.
func TestFencedSourceEncodings(t *testing.T) {
	fence := &SetSource{ExpectedEpoch: 3, NewEpoch: 4, Source: Source{Addr: "db1:3306", ServerID: 7, Flavor: "mariadb", Fenced: true}}
	v1, v2 := EncodeAs(fence, EncodingV1), EncodeAs(fence, EncodingV2)
	if v1[0] != EncodingV1 || v2[0] != EncodingV2 {
		t.Fatalf("version bytes %d and %d", v1[0], v2[0])
	}
	if !bytes.Contains(v1, []byte("fenced:db1:3306")) || bytes.Contains(v2, []byte("fenced:")) {
		t.Fatalf("V1 must carry the fenced address, V2 the plain one:\nV1 %q\nV2 %q", v1, v2)
	}
	for _, b := range [][]byte{v1, v2} {
		c, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.(*SetSource).Source; got != fence.Source {
			t.Fatalf("encoding %d decodes to %+v, want %+v", b[0], got, fence.Source)
		}
	}
	// Not fenced: V2 adds only the flags.
	plain := &SetSource{ExpectedEpoch: 3, NewEpoch: 4, Source: Source{Addr: "db1:3306", Flavor: "mariadb"}}
	if c, err := Decode(EncodeAs(plain, EncodingV2)); err != nil || c.(*SetSource).Source.Fenced {
		t.Fatalf("plain source in V2: %+v %v", c, err)
	}
	// Bad V2 inputs are malformed, never misread.
	pv2 := EncodeAs(plain, EncodingV2)
	badFlags := append(pv2[:len(pv2)-1:len(pv2)-1], 0x02)
	prefixed := EncodeAs(&SetSource{ExpectedEpoch: 3, NewEpoch: 4, Source: Source{Addr: "fenced:db1:3306", Flavor: "mariadb"}}, EncodingV2)
	for name, b := range map[string][]byte{"unknown flag": badFlags, "fenced address in V2": prefixed, "no flags": EncodeAs(plain, EncodingV1)} {
		b = append([]byte(nil), b...)
		b[0] = EncodingV2
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// A newer encoding is not malformed: it is unknown.
	newer := append([]byte{MaxEncoding + 1}, v2[1:]...)
	if _, err := Decode(newer); !errors.Is(err, ErrNewerEncoding) || errors.Is(err, ErrMalformed) {
		t.Fatalf("encoding %d: %v, want ErrNewerEncoding only", MaxEncoding+1, err)
	}
	// A member that reads V1 only meets V2 as newer.
	if _, err := decodeUpTo(v2, EncodingV1); !errors.Is(err, ErrNewerEncoding) {
		t.Fatalf("V2 read by a V1 member: %v", err)
	}
}

// TestFencedLogRejectsAppends: a fenced source's appends are refused even
// at the fence's epoch and under the source's own address (the address no
// longer differs, so the flag decides).
func TestFencedLogRejectsAppends(t *testing.T) {
	for _, v := range []byte{EncodingV1, EncodingV2} {
		r := newRig(t, "mariadb")
		if res := r.apply(&SetSource{NewEpoch: 1, Source: r.src}); res.Code != ResultOK {
			t.Fatal(res)
		}
		if res := r.appendTxns(1, "", r.txns(1, 2, 100)); res.Code != ResultOK {
			t.Fatal(res)
		}
		fenced := r.src
		fenced.Fenced = true
		c, err := Decode(EncodeAs(&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: fenced}, v))
		if err != nil {
			t.Fatal(err)
		}
		res := r.a.apply(c, r.store)
		r.a.finish()
		r.store.apply(r.a.ops)
		r.a.ops = r.a.ops[:0]
		if res.Code != ResultOK || !r.a.st.Source.Fenced || r.a.st.Source.Addr != r.src.Addr {
			t.Fatalf("encoding %d: fence: %+v, state source %+v", v, res, r.a.st.Source)
		}
		if res.Source != "fenced:"+r.src.Addr {
			t.Fatalf("encoding %d: the result names source %q", v, res.Source)
		}
		res = r.appendTxns(2, r.gtid(2), r.txns(3, 3, 100))
		if res.Code != ResultWrongSource || !strings.Contains(res.Message, "fenced") {
			t.Fatalf("encoding %d: an append at the fence's epoch from the old source: %+v", v, res)
		}
		// The state stored before V2 (a "fenced:" address) loads typed.
		if got := legacySource(Source{Addr: "fenced:" + r.src.Addr}); !got.Fenced || got.Addr != r.src.Addr {
			t.Fatalf("legacy stored source: %+v", got)
		}
	}
}

// TestNewerEncodingStopsApplying: a member that meets an entry in an
// encoding it does not read applies the entries before it, then stops and
// says so; it never returns a result for that entry.
func TestNewerEncodingStopsApplying(t *testing.T) {
	s := newSM(1, 1, "/sm", vfs.NewMem(), slog.New(slog.DiscardHandler))
	s.maxEnc = EncodingV1 // NB: as the binary before V2
	var told *NewerEncodingError
	s.onNewer = func(e *NewerEncodingError) { told = e }
	if _, err := s.Open(nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	src := Source{Addr: "db1:3306", ServerID: 1, Flavor: "mariadb"}
	ents := []sm.Entry{
		{Index: 1, Cmd: EncodeAs(&SetSource{NewEpoch: 1, Source: src}, EncodingV1)},
		{Index: 2, Cmd: EncodeAs(&Meta{Key: "k", Value: []byte("v")}, EncodingV1)},
		{Index: 3, Cmd: EncodeAs(&SetSource{ExpectedEpoch: 1, NewEpoch: 2, Source: Source{Addr: "db1:3306", Flavor: "mariadb", Fenced: true}}, EncodingV2)},
		{Index: 4, Cmd: EncodeAs(&Meta{Key: "k2", Value: []byte("v")}, EncodingV1)},
	}
	out, err := s.Update(ents)
	var ne *NewerEncodingError
	if !errors.As(err, &ne) || out != nil {
		t.Fatalf("Update: %v results, err %v; want no results and a NewerEncodingError", len(out), err)
	}
	if told == nil || told.Index != 3 || told.Encoding != EncodingV2 || told.Reads != EncodingV1 {
		t.Fatalf("the daemon was told %+v", told)
	}
	if !strings.Contains(told.Error(), "log entry 3 is in encoding 2") || !strings.Contains(told.Error(), "Install the newer binlogsvr") {
		t.Fatalf("message: %s", told.Error())
	}
	r := s.Reader()
	if r.Applied() != 2 {
		t.Fatalf("applied up to %d, want 2 (the entries before the newer one)", r.Applied())
	}
	if st := r.State(); st.Epoch != 1 || st.Source.Fenced {
		t.Fatalf("state %+v: the newer entry must not apply", st)
	}
	if _, ok, _ := r.Meta("k2"); ok {
		t.Fatal("an entry after the newer one applied")
	}
	// The same member on the newer binary applies the rest.
	s.maxEnc = MaxEncoding
	out, err = s.Update(ents[2:])
	if err != nil || len(out) != 2 {
		t.Fatalf("upgraded: %d results, %v", len(out), err)
	}
	if st := r.State(); st.Epoch != 2 || !st.Source.Fenced {
		t.Fatalf("upgraded: state %+v", st)
	}
}
