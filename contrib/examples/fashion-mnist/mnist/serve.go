package mnist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Prediction is the answer of POST /predict.
type Prediction struct {
	ClassID    int     `json:"class_id"`
	ClassName  string  `json:"class_name"`
	Confidence float64 `json:"confidence"`
}

// Predict classifies one image of Features pixel bytes.
func (m *Model) Predict(img []byte) Prediction {
	x, p := make([]float32, m.F), make([]float32, m.K)
	Pixels(img, x)
	c := m.Probs(x, p)
	return Prediction{ClassID: c, ClassName: Classes[c], Confidence: round(float64(p[c]), 4)}
}

// Handler serves a model over HTTP:
//
//	POST /predict   body: 784 raw pixel bytes, or a JSON array of 784
//	                numbers from 0 to 255 (row-major, 0 is background)
//	                → {"class_id", "class_name", "confidence"}
//	GET /healthz    → {"status": "ok", "params": params.json}
//
// params may be nil.
func Handler(m *Model, params *TrainParams) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, struct {
			Status string       `json:"status"`
			Params *TrainParams `json:"params"`
		}{"ok", params})
	})
	mux.HandleFunc("POST /predict", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		img, err := decodeImage(body)
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		reply(w, http.StatusOK, m.Predict(img))
	})
	return mux
}

// decodeImage accepts Features raw bytes, or a JSON array of Features
// numbers in [0,255].
func decodeImage(body []byte) ([]byte, error) {
	if len(body) == Features {
		return body, nil
	}
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '[' {
		var nums []float64
		if err := json.Unmarshal(t, &nums); err != nil {
			return nil, fmt.Errorf("body: %v", err)
		}
		if len(nums) != Features {
			return nil, fmt.Errorf("body: %d numbers, want %d", len(nums), Features)
		}
		img := make([]byte, Features)
		for i, v := range nums {
			if v < 0 || v > 255 {
				return nil, fmt.Errorf("body: pixel %d is %v, want 0 to 255", i, v)
			}
			img[i] = byte(v + 0.5)
		}
		return img, nil
	}
	return nil, fmt.Errorf("body: %d bytes; want %d raw pixel bytes or a JSON array of %d numbers", len(body), Features, Features)
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(v)
	w.Write(append(b, '\n'))
}
