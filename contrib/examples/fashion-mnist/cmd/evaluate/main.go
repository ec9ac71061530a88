// Command evaluate scores the trained model on the labelled test batches
// and writes metrics.json (accuracy, confusion matrix). In the pipeline it
// reads /pfs/train, /pfs/images and /pfs/labels and writes /pfs/out.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/strata-data/strata/contrib/examples/fashion-mnist/mnist"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("evaluate: ")
	model := flag.String("model", "/pfs/train", "directory holding model.bin")
	images := flag.String("images", "/pfs/images", "directory of image batches (*.bin)")
	labels := flag.String("labels", "/pfs/labels", "directory of label batches, named like the image batches")
	out := flag.String("out", "/pfs/out", "output directory")
	flag.Parse()
	m, err := mnist.Evaluate(*model, *images, *labels, *out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("accuracy %.4f on %d examples (%d batches, %d unlabelled)\n", m.Accuracy, m.Examples, len(m.Batches), len(m.Unlabeled))
}
