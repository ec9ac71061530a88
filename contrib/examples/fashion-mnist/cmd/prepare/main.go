// Command prepare turns the training shards into one float32 training
// matrix: train.f32, labels.u8 and meta.json. In the pipeline it reads
// /pfs/training (glob "/": one datum over every shard) and writes
// /pfs/out.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/strata-data/strata/contrib/examples/fashion-mnist/mnist"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("prepare: ")
	in := flag.String("in", "/pfs/training", "directory of training shards (*.bin)")
	out := flag.String("out", "/pfs/out", "output directory")
	flag.Parse()
	m, err := mnist.Prepare(*in, *out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("prepared %d examples from %d shards, classes %v\n", m.Examples, len(m.Files), m.ClassCounts)
}
