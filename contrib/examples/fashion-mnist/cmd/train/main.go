// Command train fits a softmax-regression model to prepare's output by
// mini-batch SGD and writes model.bin and params.json. In the pipeline it
// reads /pfs/prepare and writes /pfs/out.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/strata-data/strata/contrib/examples/fashion-mnist/mnist"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("train: ")
	d := mnist.DefaultTrainOptions
	in := flag.String("in", "/pfs/prepare", "prepare's output: train.f32, labels.u8")
	out := flag.String("out", "/pfs/out", "output directory")
	var o mnist.TrainOptions
	flag.IntVar(&o.Epochs, "epochs", d.Epochs, "passes over the training set")
	flag.Float64Var(&o.LearningRate, "learning-rate", d.LearningRate, "initial step size (decays linearly to 1/20 of it)")
	flag.IntVar(&o.BatchSize, "batch-size", d.BatchSize, "examples per SGD step")
	flag.Float64Var(&o.Momentum, "momentum", d.Momentum, "momentum")
	flag.Float64Var(&o.L2, "l2", d.L2, "weight decay")
	flag.Uint64Var(&o.Seed, "seed", d.Seed, "seed of the shuffling")
	flag.Parse()
	p, err := mnist.TrainDir(*in, *out, o)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("trained on %d examples: train accuracy %.4f, loss %.4f\n", p.Examples, p.TrainAccuracy, p.TrainLoss)
}
