// Package cmd is strata's command line: one cobra command per verb, each a
// thin layer that parses flags and calls the API client or the daemon.
package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"gopkg.in/yaml.v3"

	"github.com/strata-data/strata/api"
	"github.com/strata-data/strata/meta"
)

// Exit codes (documented in docs/cli.md).
const (
	ExitOK          = 0
	ExitError       = 1
	ExitUsage       = 2
	ExitNotFound    = 3
	ExitConflict    = 4
	ExitInvalid     = 5
	ExitUnreachable = 6
	ExitFaults      = 7
	ExitAuth        = 8
	ExitUnavailable = 9  // pipelines are off (strata up --no-pipelines)
	ExitJobFailed   = 10 // a job waited for failed or was killed
)

// errFaults: fsck found problems (already printed).
var errFaults = errors.New("fsck found faults")

type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

type globals struct {
	server string
	token  string
}

// Execute runs the CLI and returns the process exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := &globals{}
	root := &cobra.Command{
		Use:   "strata",
		Short: "Versioned data and data pipelines",
		Long: `strata keeps repos of files with commits and branches (git for data),
stores them as deduplicated content-defined chunks, and serves every version.

Start the daemon with 'strata up', then create a repo and put data:
  strata repo create images
  strata put -r images@main:/ -f ./photos
  strata ls images@main
References are REPO@BRANCH, REPO@COMMIT (or a unique prefix), REPO@BRANCH^N
(the N-th ancestor), with :/PATH for a path inside the commit.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.server, "server", "", "daemon address: unix:///path/strata.sock or http://host:port (default $STRATA_ADDR, else the default data dir's socket)")
	root.PersistentFlags().StringVar(&g.token, "token", "", "bearer token for a TCP address (default $STRATA_TOKEN)")
	root.AddCommand(
		upCmd(g), downCmd(g), statusCmd(g),
		repoCmd(g), branchCmd(g), commitCmd(g),
		putCmd(g), getCmd(g), lsCmd(g), catCmd(g), rmCmd(g), diffCmd(g), logCmd(g),
		mountCmd(g), unmountCmd(g),
		fsckCmd(g), gcCmd(g), versionCmd(g),
		pipelineCmd(g), jobCmd(g), waitCmd(g), datumCmd(g), logsCmd(g), lineageCmd(g), imageCmd(g),
		workerCmd(g),
		agentCmd(),
	)
	for _, c := range root.Commands() {
		if c.HasSubCommands() {
			groupArgs(c)
		}
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if !errors.Is(err, errFaults) {
		fmt.Fprintln(os.Stderr, "strata: "+err.Error())
	}
	return exitCode(err)
}

// groupArgs makes a command group (repo, branch, ...) reject an unknown
// verb instead of printing help and exiting 0.
func groupArgs(c *cobra.Command) {
	c.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q; see '%s --help'", args[0], c.CommandPath(), c.CommandPath())
		}
		return nil
	}
	c.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
}

func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "accepts "):
		return ExitUsage
	case errors.Is(err, errFaults):
		return ExitFaults
	case errors.Is(err, errJobFailed):
		return ExitJobFailed
	case errors.Is(err, api.ErrUnavailable):
		return ExitUnavailable
	case errors.Is(err, api.ErrUnauthorized):
		return ExitAuth
	case errors.Is(err, api.ErrUnreachable):
		return ExitUnreachable
	case errors.Is(err, meta.ErrNotExist):
		return ExitNotFound
	case errors.Is(err, meta.ErrExist), errors.Is(err, meta.ErrConflict):
		return ExitConflict
	case errors.Is(err, meta.ErrInvalid), errors.Is(err, meta.ErrAmbiguous), errors.Is(err, meta.ErrIsDir), errors.Is(err, meta.ErrNotDir):
		return ExitInvalid
	}
	return ExitError
}

func (g *globals) client() (*api.Client, error) {
	c, err := api.NewClient(g.server, g.token)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// refClient parses a REPO@REF[:/PATH] argument and connects to the daemon.
func (g *globals) refClient(arg string) (ref, *api.Client, error) {
	r, err := parseRef(arg)
	if err != nil {
		return r, nil, err
	}
	cl, err := g.client()
	return r, cl, err
}

// ref is a parsed REPO@REF:/PATH.
type ref struct {
	repo, ref, path string
	hasPath         bool
}

func (r ref) String() string {
	s := r.repo + "@" + r.ref
	if r.hasPath {
		s += ":" + r.path
	}
	return s
}

// parseRef parses REPO[@REF][:/PATH]; REF defaults to main, PATH to /.
func parseRef(s string) (ref, error) {
	r := ref{ref: meta.DefaultBranch, path: "/"}
	head := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		head, r.path, r.hasPath = s[:i], s[i+1:], true
		if r.path == "" {
			r.path = "/"
		}
		if !strings.HasPrefix(r.path, "/") {
			r.path = "/" + r.path
		}
	}
	r.repo = head
	if i := strings.IndexByte(head, '@'); i >= 0 {
		r.repo, r.ref = head[:i], head[i+1:]
		if r.ref == "" {
			return r, usagef("reference %q: nothing after '@'; want REPO@BRANCH or REPO@COMMIT", s)
		}
	}
	if r.repo == "" {
		return r, usagef("reference %q: no repo; want REPO@REF[:/PATH]", s)
	}
	return r, nil
}

// output formats: table (default), json, yaml.
type output struct{ format string }

func (o *output) flag(c *cobra.Command) {
	c.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table, json or yaml")
}

func (o *output) check() error {
	switch o.format {
	case "table", "json", "yaml":
		return nil
	}
	return usagef("output format %q: want table, json or yaml", o.format)
}

// print writes v as JSON or YAML, or calls table for the table format.
func (o *output) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	switch o.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		// Through JSON so field names match the JSON form.
		buf, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(buf, &generic); err != nil {
			return err
		}
		return yaml.NewEncoder(w).Encode(integral(generic))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// integral turns JSON's whole float64 numbers back into integers so YAML
// prints sizes as 3000012, not 3.000012e+06.
func integral(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = integral(e)
		}
	case []any:
		for i, e := range x {
			x[i] = integral(e)
		}
	}
	return v
}

func stderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
