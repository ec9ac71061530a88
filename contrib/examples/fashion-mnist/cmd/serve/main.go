// Command serve answers predictions over HTTP with a trained model:
// POST /predict with 784 raw pixel bytes or a JSON array of 784 numbers
// (0-255), GET /healthz for the model's parameters.
package main

import (
	"cmp"
	"flag"
	"log"
	"net/http"
	"os"
	"path/filepath"

	"github.com/strata-data/strata/contrib/examples/fashion-mnist/mnist"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("serve: ")
	model := flag.String("model", "/pfs/train/model.bin", "model file; params.json next to it is shown by /healthz")
	listen := flag.String("listen", ":"+cmp.Or(os.Getenv("PORT"), "8080"), "address to listen on (default from $PORT)")
	flag.Parse()
	m, err := mnist.ReadModel(*model)
	if err != nil {
		log.Fatal(err)
	}
	params, err := mnist.ReadParams(filepath.Join(filepath.Dir(*model), "params.json"))
	if err != nil {
		log.Printf("no parameters: %v", err)
		params = nil
	}
	log.Printf("serving %s on %s", *model, *listen)
	log.Fatal(http.ListenAndServe(*listen, mnist.Handler(m, params)))
}
