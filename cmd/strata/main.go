// Command strata is versioned data and data pipelines in one binary.
package main

import (
	"os"

	"github.com/strata-data/strata/cmd"
)

func main() { os.Exit(cmd.Execute()) }
