// Command load splits the Fashion-MNIST IDX files into the example's
// record files: training shards for the training repo, test image batches
// for the images repo and their labels for the labels repo. It runs on
// the host; the Makefile puts what it writes with strata put -r.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/strata-data/strata/contrib/examples/fashion-mnist/mnist"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("load: ")
	src := flag.String("src", mnist.DefaultSource, "directory of the dataset's *-idx?-ubyte.gz files")
	out := flag.String("out", "", "output directory: gets training/, images/ and labels/ (required)")
	shards := flag.Int("shards", 6, "number of training shards")
	batch := flag.Int("batch-size", 1000, "test images per batch")
	shardSel := flag.String("shard-range", ":", `training shards to write, FROM:TO (half-open: ":5" is the first five, "5:" the rest) or "none"`)
	batchSel := flag.String("batch-range", ":", `test batches to write, FROM:TO or "none"`)
	trainLimit := flag.Int("train-examples", 0, "use only the first N training examples (0: all)")
	testLimit := flag.Int("test-examples", 0, "use only the first N test examples (0: all)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		log.Fatal("--out is required and there are no arguments")
	}
	sr, err := mnist.ParseRange(*shardSel)
	if err != nil {
		log.Fatal(err)
	}
	br, err := mnist.ParseRange(*batchSel)
	if err != nil {
		log.Fatal(err)
	}
	res, err := mnist.Load(*src, *out, mnist.LoadOptions{
		Shards: *shards, BatchSize: *batch, ShardSel: sr, BatchSel: br,
		TrainLimit: *trainLimit, TestLimit: *testLimit,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range res.Files {
		fmt.Println(f)
	}
}
