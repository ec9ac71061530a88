package mnist

import (
	"bytes"
	"path/filepath"
	"testing"
)

func TestRecordsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	px := make([]byte, 3*Features)
	for i := range px {
		px[i] = byte(i * 7)
	}
	for _, r := range []*Records{
		{Kind: KindTrain, First: 12, Rows: Rows, Cols: Cols, Labels: []byte{1, 2, 9}, Pixels: px},
		{Kind: KindImages, First: 3, Rows: Rows, Cols: Cols, Pixels: px},
		{Kind: KindLabels, First: 3, Rows: Rows, Cols: Cols, Labels: []byte{0, 5, 7}},
	} {
		p := filepath.Join(dir, r.Kind+".bin")
		if err := WriteRecords(p, r); err != nil {
			t.Fatal(err)
		}
		got, err := ReadRecords(p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != r.Kind || got.First != r.First || got.N() != 3 || !bytes.Equal(got.Labels, r.Labels) || !bytes.Equal(got.Pixels, r.Pixels) {
			t.Fatalf("%s: read back %+v", r.Kind, got)
		}
	}
	if err := WriteRecords(filepath.Join(dir, "bad.bin"), &Records{Kind: KindLabels, Rows: Rows, Cols: Cols, Labels: []byte{10}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecords(filepath.Join(dir, "bad.bin")); err == nil {
		t.Fatal("label 10 accepted")
	}
}

func TestParseRange(t *testing.T) {
	for s, want := range map[string]Range{":": All, ":5": {0, 5}, "5:": {5, -1}, "2:4": {2, 4}, "none": {0, 0}} {
		got, err := ParseRange(s)
		if err != nil || got != want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "5", "a:", "-1:"} {
		if _, err := ParseRange(s); err == nil {
			t.Errorf("ParseRange(%q) accepted", s)
		}
	}
}

func TestModelRoundTrip(t *testing.T) {
	m := NewModel(Features, 10)
	for i := range m.W {
		m.W[i] = float32(i%13) - 6
	}
	m.B[3] = 2.5
	b, _ := m.MarshalBinary()
	var got Model
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	b2, _ := got.MarshalBinary()
	if !bytes.Equal(b, b2) || len(b) != 16+4*(Features*10+10) {
		t.Fatal("model changed in a round trip")
	}
	if err := got.UnmarshalBinary(b[:100]); err == nil {
		t.Fatal("truncated model accepted")
	}
}

func TestDecodeImage(t *testing.T) {
	raw := bytes.Repeat([]byte{200}, Features)
	if img, err := decodeImage(raw); err != nil || !bytes.Equal(img, raw) {
		t.Fatalf("raw bytes: %v", err)
	}
	var js bytes.Buffer
	js.WriteString("[")
	for i := range Features {
		if i > 0 {
			js.WriteString(",")
		}
		js.WriteString("200")
	}
	js.WriteString("]")
	if img, err := decodeImage(js.Bytes()); err != nil || !bytes.Equal(img, raw) {
		t.Fatalf("JSON numbers: %v", err)
	}
	for _, bad := range []string{"", "[1,2]", "[" + string(bytes.Repeat([]byte("300,"), Features-1)) + "300]", "hello"} {
		if _, err := decodeImage([]byte(bad)); err == nil {
			t.Errorf("accepted %.20q", bad)
		}
	}
}
