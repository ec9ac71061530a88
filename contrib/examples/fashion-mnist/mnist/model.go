package mnist

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// Model is a softmax-regression classifier over images scaled to [0,1].
type Model struct {
	F, K int
	W    []float32 // K rows of F
	B    []float32 // K
}

// NewModel returns a model with every weight zero.
func NewModel(f, k int) *Model {
	return &Model{F: f, K: k, W: make([]float32, f*k), B: make([]float32, k)}
}

const modelMagic = "FMMD"

// MarshalBinary encodes the model in the model.bin format.
func (m *Model) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 16+4*(len(m.W)+len(m.B)))
	b = append(b, modelMagic...)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.F))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.K))
	for _, v := range m.W {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	for _, v := range m.B {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b, nil
}

// UnmarshalBinary decodes the model.bin format.
func (m *Model) UnmarshalBinary(b []byte) error {
	if len(b) < 16 || string(b[:4]) != modelMagic {
		return fmt.Errorf("not a model file")
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != 1 {
		return fmt.Errorf("model format version %d, want 1", v)
	}
	f, k := int(binary.LittleEndian.Uint32(b[8:])), int(binary.LittleEndian.Uint32(b[12:]))
	if f <= 0 || k <= 0 || f > 1<<20 || k > 1<<10 || len(b) != 16+4*(f*k+k) {
		return fmt.Errorf("model of %d features and %d classes: %d bytes", f, k, len(b))
	}
	*m = *NewModel(f, k)
	p := b[16:]
	for i := range m.W {
		m.W[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	p = p[4*len(m.W):]
	for i := range m.B {
		m.B[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return nil
}

// ReadModel reads a model.bin file, checking it fits Fashion-MNIST.
func ReadModel(path string) (*Model, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &Model{}
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.F != Features || m.K != len(Classes) {
		return nil, fmt.Errorf("%s: model of %d features and %d classes, want %d and %d", path, m.F, m.K, Features, len(Classes))
	}
	return m, nil
}

// WriteModel writes m to path.
func WriteModel(path string, m *Model) error {
	b, _ := m.MarshalBinary()
	return os.WriteFile(path, b, 0o644)
}

// Probs sets p (length K) to the class probabilities of x (length F,
// scaled to [0,1]) and returns the most probable class.
func (m *Model) Probs(x []float32, p []float32) int {
	x = x[:m.F]
	best := 0
	for k := range m.K {
		s := m.B[k] + dot(m.W[k*m.F:(k+1)*m.F], x)
		p[k] = s
		if s > p[best] {
			best = k
		}
	}
	softmax(p[:m.K])
	return best
}

// Pixels scales image bytes to [0,1] into x.
func Pixels(img []byte, x []float32) {
	for j, v := range img {
		x[j] = float32(v) / 255
	}
}

// softmax turns scores into probabilities in place.
func softmax(p []float32) {
	mx := p[0]
	for _, v := range p {
		mx = max(mx, v)
	}
	var sum float64
	for k, v := range p {
		e := math.Exp(float64(v - mx))
		p[k] = float32(e)
		sum += e
	}
	for k := range p {
		p[k] = float32(float64(p[k]) / sum)
	}
}

// dot returns w·x (len(w) >= len(x)), summed in four interleaved parts.
func dot(w, x []float32) float32 {
	w = w[:len(x)]
	var s0, s1, s2, s3 float32
	j := 0
	for ; j+4 <= len(x); j += 4 {
		s0 += w[j] * x[j]
		s1 += w[j+1] * x[j+1]
		s2 += w[j+2] * x[j+2]
		s3 += w[j+3] * x[j+3]
	}
	for ; j < len(x); j++ {
		s0 += w[j] * x[j]
	}
	return (s0 + s1) + (s2 + s3)
}

// axpy adds a*x to y (len(y) >= len(x)).
func axpy(a float32, x, y []float32) {
	y = y[:len(x)]
	j := 0
	for ; j+4 <= len(x); j += 4 {
		y[j] += a * x[j]
		y[j+1] += a * x[j+1]
		y[j+2] += a * x[j+2]
		y[j+3] += a * x[j+3]
	}
	for ; j < len(x); j++ {
		y[j] += a * x[j]
	}
}
