// Command infer writes the model's predictions for every image batch
// (NAME.bin) as NAME.csv: index,class_id,class_name,confidence. In the
// pipeline it reads /pfs/train and one batch under /pfs/images per datum
// and writes /pfs/out.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/strata-data/strata/contrib/examples/fashion-mnist/mnist"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("infer: ")
	model := flag.String("model", "/pfs/train", "directory holding model.bin")
	images := flag.String("images", "/pfs/images", "directory of image batches (*.bin)")
	out := flag.String("out", "/pfs/out", "output directory")
	flag.Parse()
	files, err := mnist.Infer(*model, *images, *out)
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range files {
		fmt.Println("wrote", f)
	}
}
