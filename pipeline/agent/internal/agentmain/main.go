// Command agentmain is a stand-alone agent for tests, invoked with the same
// argv as the strata binary's hidden command: `agentmain __agent SOCKET`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/strata-data/strata/pipeline/agent"
)

func main() {
	if len(os.Args) != 3 || os.Args[1] != "__agent" {
		fmt.Fprintln(os.Stderr, "usage: agentmain __agent SOCKET")
		os.Exit(2)
	}
	if err := agent.Serve(context.Background(), os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
