package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/strata-data/strata/api"
)

// errJobFailed: a job that was waited for failed or was killed (exit 10).
var errJobFailed = errors.New("job failed")

// jobFailedError says which jobs failed; it is errJobFailed.
type jobFailedError struct{ msg string }

func (e jobFailedError) Error() string        { return e.msg }
func (e jobFailedError) Is(target error) bool { return target == errJobFailed }

// readSpec reads a spec file, or stdin for "-".
func readSpec(file string) ([]byte, error) {
	if file == "" {
		return nil, usagef("give the spec file with -f SPEC (or -f - for stdin)")
	}
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, usagef("spec %s is empty", file)
	}
	return b, nil
}

func pipelineCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "pipeline",
		Short: "Create, update, list, inspect, delete, stop and start pipelines",
		Long: `A pipeline runs a command in a container over every datum of its input
repos and writes what the command leaves in /pfs/out to its output repo
(named like the pipeline). It runs a job for each new commit of its inputs,
and reruns only the datums whose input files changed.

  strata pipeline create -f edges.yaml
  strata pipeline list
  strata job list --pipeline edges`,
	}
	c.AddCommand(pipelineCreateCmd(g, false), pipelineCreateCmd(g, true), pipelineListCmd(g), pipelineInspectCmd(g),
		pipelineDeleteCmd(g), pipelineStateCmd(g, "stop"), pipelineStateCmd(g, "start"))
	return c
}

func pipelineCreateCmd(g *globals, update bool) *cobra.Command {
	var file string
	var reprocess bool
	var out output
	c := &cobra.Command{
		Use:   "create -f SPEC",
		Short: "Create pipelines from a spec file (YAML or JSON; several per file)",
		Long: `Create the pipelines of a spec file: YAML or JSON, several specs in one
file separated by '---' lines. -f - reads the spec from stdin. The new
pipelines start at once: each runs a job over the current heads of its
inputs (if they have commits) and then one per new input commit. Creating
a pipeline that exists fails (exit 4); use 'strata pipeline update'.

  strata pipeline create -f edges.yaml
  cat pipelines.yaml | strata pipeline create -f -`,
		Args: cobra.NoArgs,
	}
	verb := "created"
	if update {
		verb = "updated"
		c.Use = "update -f SPEC [--reprocess]"
		c.Short = "Replace existing pipelines' specs (--reprocess: rerun every datum)"
		c.Long = `Replace the specs of existing pipelines with those of a spec file (YAML or
JSON, several separated by '---'; -f - reads stdin). Each updated pipeline
gets a new version and runs a job over its inputs' current heads. Datums
whose input files did not change keep their output from earlier jobs,
unless --reprocess, which reruns every datum (after changing the image or
the command in a way the spec does not show, say). Updating a pipeline
that does not exist fails (exit 3).

  strata pipeline update -f edges.yaml
  strata pipeline update -f edges.yaml --reprocess`
		c.Flags().BoolVar(&reprocess, "reprocess", false, "rerun every datum instead of reusing the output of unchanged ones")
	}
	c.Flags().StringVarP(&file, "file", "f", "", "spec file (YAML or JSON), or - for stdin")
	out.flag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		if err := out.check(); err != nil {
			return err
		}
		spec, err := readSpec(file)
		if err != nil {
			return err
		}
		cl, err := g.client()
		if err != nil {
			return err
		}
		ps, err := cl.CreatePipelines(c.Context(), spec, update, reprocess)
		if err != nil {
			return err // the daemon's message says what to do (update, create the input repo, ...)
		}
		return out.print(os.Stdout, ps, func(*tabwriter.Writer) {
			for _, p := range ps {
				fmt.Fprintf(os.Stderr, "%s pipeline %s (version %d)\n", verb, p.Name, p.Version)
			}
		})
	}
	return c
}

func pipelineListCmd(g *globals) *cobra.Command {
	var out output
	c := &cobra.Command{
		Use:   "list",
		Short: "List pipelines with their state and jobs",
		Long: `List every pipeline: its spec version, its input (repo:glob, with cross,
union, join and group spelled out), its state (running, stopped, or failed
when it cannot run; 'strata pipeline inspect' says why) and how many of its
jobs are in each state.

  strata pipeline list
  strata pipeline list -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			ps, err := cl.ListPipelines(c.Context())
			if err != nil {
				return err
			}
			return out.print(os.Stdout, ps, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tVERSION\tINPUT\tSTATE\tJOBS\tLAST JOB\tCREATED")
				for _, p := range ps {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Version, inputSummary(p.Spec), p.State,
						jobCounts(p.JobStates), orNone(short(p.LastJob)), ago(p.Created))
				}
			})
		},
	}
	out.flag(c)
	return c
}

func pipelineInspectCmd(g *globals) *cobra.Command {
	var out output
	c := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a pipeline, its state and its spec (with defaults filled in)",
		Long: `Show a pipeline: version, state (and why it failed, if it did), its newest
job, its job counts, and its spec with every default filled in.

  strata pipeline inspect edges
  strata pipeline inspect edges -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			p, err := cl.InspectPipeline(c.Context(), args[0])
			if err != nil {
				return notFoundHint(err, "see 'strata pipeline list'")
			}
			if err := out.print(os.Stdout, p, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "Name:\t%s\n", p.Name)
				fmt.Fprintf(tw, "Version:\t%d\n", p.Version)
				fmt.Fprintf(tw, "State:\t%s\n", p.State)
				if p.Error != "" {
					fmt.Fprintf(tw, "Error:\t%s\n", p.Error)
				}
				fmt.Fprintf(tw, "Input:\t%s\n", inputSummary(p.Spec))
				fmt.Fprintf(tw, "Created:\t%s\n", p.Created.Local().Format(time.RFC3339))
				fmt.Fprintf(tw, "Updated:\t%s\n", p.Updated.Local().Format(time.RFC3339))
				fmt.Fprintf(tw, "Last job:\t%s\n", orNone(p.LastJob))
				fmt.Fprintf(tw, "Jobs:\t%s\n", jobCounts(p.JobStates))
			}); err != nil {
				return err
			}
			if out.format == "table" && len(p.Spec) > 0 {
				fmt.Println("Spec:")
				return printIndentedYAML(os.Stdout, p.Spec, "  ")
			}
			return nil
		},
	}
	out.flag(c)
	return c
}

// printIndentedYAML prints a JSON document as YAML, each line indented.
func printIndentedYAML(w io.Writer, doc json.RawMessage, indent string) error {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return err
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(integral(v)); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprintln(w, indent+line)
	}
	return nil
}

func pipelineDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a pipeline with its jobs and its output repo",
		Long: `Delete a pipeline: stop its running job, and remove the pipeline, its jobs,
their logs and its output repo. Run 'strata gc' afterwards to reclaim the
space. To pause a pipeline without losing anything, use 'strata pipeline
stop'.

  strata pipeline delete edges`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.DeletePipeline(c.Context(), args[0]); err != nil {
				return notFoundHint(err, "see 'strata pipeline list'")
			}
			fmt.Fprintf(os.Stderr, "deleted pipeline %s with its jobs and output repo (run 'strata gc' to reclaim space)\n", args[0])
			return nil
		},
	}
}

func pipelineStateCmd(g *globals, verb string) *cobra.Command {
	c := &cobra.Command{
		Use:  verb + " NAME",
		Args: cobra.ExactArgs(1),
	}
	if verb == "stop" {
		c.Short = "Stop a pipeline: kill its running job and start no new ones"
		c.Long = `Stop a pipeline: its running job is killed and no new jobs start while it
is stopped, whatever is committed to its inputs. 'strata pipeline start'
resumes it: it then runs a job over its inputs' current heads.

  strata pipeline stop edges`
	} else {
		c.Short = "Start a stopped pipeline again"
		c.Long = `Start a stopped pipeline (or retry a failed one): it runs a job over its
inputs' current heads if they changed since its last job, then one per new
input commit.

  strata pipeline start edges`
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		cl, err := g.client()
		if err != nil {
			return err
		}
		if verb == "stop" {
			err = cl.StopPipeline(c.Context(), args[0])
		} else {
			err = cl.StartPipeline(c.Context(), args[0])
		}
		if err != nil {
			return notFoundHint(err, "see 'strata pipeline list'")
		}
		if verb == "stop" {
			fmt.Fprintf(os.Stderr, "stopped pipeline %s (resume it with 'strata pipeline start %s')\n", args[0], args[0])
		} else {
			fmt.Fprintf(os.Stderr, "started pipeline %s\n", args[0])
		}
		return nil
	}
	return c
}

// notFoundHint adds what to do next to a not-found error.
func notFoundHint(err error, hint string) error {
	if err != nil && exitCode(err) == ExitNotFound {
		return fmt.Errorf("%w; %s", err, hint)
	}
	return err
}

// specInput mirrors the input part of a pipeline spec, to summarize it.
type specInput struct {
	PFS *struct {
		Repo, Branch, Glob, Name string
	}
	Cross, Union, Join, Group []specInput
	Cron                      *struct{ Name, Spec string }
}

// inputSummary renders a spec's input as "images:/*" or
// "cross(images:/*, models:/)".
func inputSummary(spec json.RawMessage) string {
	var s struct{ Input specInput }
	if json.Unmarshal(spec, &s) != nil {
		return "?"
	}
	return s.Input.String()
}

func (in specInput) String() string {
	list := func(op string, ins []specInput) string {
		parts := make([]string, len(ins))
		for i, x := range ins {
			parts[i] = x.String()
		}
		return op + "(" + strings.Join(parts, ", ") + ")"
	}
	switch {
	case in.PFS != nil:
		s := in.PFS.Repo
		if in.PFS.Branch != "" && in.PFS.Branch != "main" {
			s += "@" + in.PFS.Branch
		}
		return s + ":" + in.PFS.Glob
	case in.Cron != nil:
		return "cron " + in.Cron.Name + " (" + in.Cron.Spec + ")"
	case in.Cross != nil:
		return list("cross", in.Cross)
	case in.Union != nil:
		return list("union", in.Union)
	case in.Join != nil:
		return list("join", in.Join)
	case in.Group != nil:
		return list("group", in.Group)
	}
	return "-"
}

// jobCounts renders a pipeline's job counts: "1 running, 3 success".
func jobCounts(m map[string]int) string {
	order := []string{api.JobRunning, api.JobCreated, api.JobSuccess, api.JobFailure, api.JobKilled}
	var parts []string
	seen := map[string]bool{}
	for _, s := range order {
		seen[s] = true
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[s], s))
		}
	}
	var rest []string
	for s, n := range m {
		if !seen[s] && n > 0 {
			rest = append(rest, fmt.Sprintf("%d %s", n, s))
		}
	}
	sort.Strings(rest)
	parts = append(parts, rest...)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func jobCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "job",
		Short: "List, inspect, wait for and stop pipeline jobs",
		Long: `A job is one run of a pipeline over one set of input commits. Its ID is the
ID of the output commit it writes (in the repo named like the pipeline).

  strata job list --pipeline edges
  strata job wait 4f1c2a9b0c11`,
	}
	var pipeline string
	var limit int
	var listOut output
	list := &cobra.Command{
		Use:   "list [--pipeline P] [--limit N]",
		Short: "List jobs, newest first",
		Long: `List jobs, newest first: of one pipeline with --pipeline, else of every
pipeline. DATUMS is processed+skipped/total (skipped datums reused an
earlier job's output), with the failed ones counted after it. IDs are
shortened to 12 characters; every command takes a unique prefix of an ID
(6 characters or more).

  strata job list
  strata job list --pipeline edges -n 5`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := listOut.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			js, err := cl.ListJobs(c.Context(), pipeline, limit)
			if err != nil {
				return notFoundHint(err, "see 'strata pipeline list'")
			}
			return listOut.print(os.Stdout, js, func(tw *tabwriter.Writer) { jobTable(tw, js) })
		},
	}
	list.Flags().StringVarP(&pipeline, "pipeline", "p", "", "only this pipeline's jobs")
	list.Flags().IntVarP(&limit, "limit", "n", 0, "show at most this many (0: all)")
	listOut.flag(list)

	var inspOut output
	inspect := &cobra.Command{
		Use:   "inspect ID",
		Short: "Show a job: state, inputs, output commit and datum counts",
		Long: `Show a job: its state (and error), input commits, output commit, times
and datum counts. 'strata datum list --job ID' lists its datums.

  strata job inspect 4f1c2a9b0c11`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := inspOut.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			j, err := cl.InspectJob(c.Context(), args[0])
			if err != nil {
				return notFoundHint(err, "see 'strata job list'")
			}
			return inspOut.print(os.Stdout, j, func(tw *tabwriter.Writer) { jobDetail(tw, j) })
		},
	}
	inspOut.flag(inspect)

	var waitOut output
	var waitTimeout time.Duration
	wait := &cobra.Command{
		Use:   "wait ID [--timeout D]",
		Short: "Wait until a job has finished; exit 10 if it failed",
		Long: `Block until a job has finished, then show it. Exits 0 if the job
succeeded, 10 if it failed or was killed (the error says where to look),
1 if --timeout ran out first.

  strata job wait 4f1c2a9b0c11 && strata get edges@4f1c2a9b0c11:/ -r -o out`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := waitOut.check(); err != nil {
				return err
			}
			cl, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(c.Context(), waitTimeout)
			defer cancel()
			j, err := cl.WaitJob(ctx, args[0])
			if err != nil {
				return waitError(err, waitTimeout, "job "+args[0]+" is still running", "see 'strata job list'")
			}
			if err := waitOut.print(os.Stdout, j, func(tw *tabwriter.Writer) { jobDetail(tw, j) }); err != nil {
				return err
			}
			return failedJobs([]*api.Job{j})
		},
	}
	wait.Flags().DurationVar(&waitTimeout, "timeout", 0, "give up after this long (0: wait forever)")
	waitOut.flag(wait)

	stop := &cobra.Command{
		Use:   "stop ID",
		Short: "Kill a running job (its output commit is finished as failed)",
		Long: `Kill a running job: its running datums are killed and its output commit is
finished as failed, so nothing downstream runs on it. The pipeline keeps
running and starts a job for the next input commit; to pause it, use
'strata pipeline stop'.

  strata job stop 4f1c2a9b0c11`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client()
			if err != nil {
				return err
			}
			if err := cl.StopJob(c.Context(), args[0]); err != nil {
				return notFoundHint(err, "see 'strata job list'")
			}
			fmt.Fprintf(os.Stderr, "stopped job %s\n", args[0])
			return nil
		},
	}
	c.AddCommand(list, inspect, wait, stop)
	return c
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// waitError explains a wait that ran out of time.
func waitError(err error, timeout time.Duration, still, hint string) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gave up after %s: %s (wait longer with --timeout, or 0 for no limit)", timeout, still)
	}
	return notFoundHint(err, hint)
}

// failedJobs returns errJobFailed (exit 10) naming each job that failed
// or was killed, and where to read its logs.
func failedJobs(js []*api.Job) error {
	var msgs []string
	for _, j := range js {
		if j.State != api.JobFailure && j.State != api.JobKilled {
			continue
		}
		m := fmt.Sprintf("pipeline %s job %s %s", j.Pipeline, short(j.ID), stateWord(j.State))
		if j.Error != "" {
			m += ": " + j.Error
		}
		if !strings.Contains(j.Error, "strata logs") {
			m += fmt.Sprintf(" (see 'strata logs --pipeline %s --job %s' and 'strata datum list --job %s')", j.Pipeline, short(j.ID), short(j.ID))
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	head := "job failed"
	if len(js) > 1 {
		head = fmt.Sprintf("%d of %d jobs failed", len(msgs), len(js))
	}
	return jobFailedError{head + ": " + strings.Join(msgs, "; ")}
}

func stateWord(s string) string {
	if s == api.JobKilled {
		return "was killed"
	}
	return "failed"
}

func jobTable(tw *tabwriter.Writer, js []*api.Job) {
	fmt.Fprintln(tw, "ID\tPIPELINE\tSTATE\tDATUMS\tSTARTED\tDURATION")
	for _, j := range js {
		started := "-"
		if j.Started != nil {
			started = ago(*j.Started)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", short(j.ID), j.Pipeline, j.State, datumCounts(j), started, jobDuration(j))
	}
}

// datumCounts renders "7+2/10" (processed+skipped/total), with ", 1
// failed" when some failed.
func datumCounts(j *api.Job) string {
	s := fmt.Sprintf("%d+%d/%d", j.Processed, j.Skipped, j.Total)
	if j.Failed > 0 {
		s += fmt.Sprintf(", %d failed", j.Failed)
	}
	return s
}

func jobDuration(j *api.Job) string {
	if j.Started == nil {
		return "-"
	}
	end := time.Now()
	if j.Finished != nil {
		end = *j.Finished
	}
	return humanDuration(end.Sub(*j.Started))
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func jobDetail(tw *tabwriter.Writer, j *api.Job) {
	fmt.Fprintf(tw, "ID:\t%s\n", j.ID)
	fmt.Fprintf(tw, "Pipeline:\t%s (spec version %d)\n", j.Pipeline, j.SpecVersion)
	fmt.Fprintf(tw, "State:\t%s\n", j.State)
	if j.Error != "" {
		fmt.Fprintf(tw, "Error:\t%s\n", j.Error)
	}
	for _, in := range j.Inputs {
		branch := ""
		if in.Branch != "" {
			branch = " (" + in.Branch + ")"
		}
		fmt.Fprintf(tw, "Input %s:\t%s@%s%s\n", in.Name, in.Repo, in.Commit, branch)
	}
	fmt.Fprintf(tw, "Output:\t%s\n", orNone(j.Output))
	fmt.Fprintf(tw, "Created:\t%s\n", j.Created.Local().Format(time.RFC3339))
	if j.Started != nil {
		fmt.Fprintf(tw, "Started:\t%s\n", j.Started.Local().Format(time.RFC3339))
	}
	if j.Finished != nil {
		fmt.Fprintf(tw, "Finished:\t%s\n", j.Finished.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Duration:\t%s\n", jobDuration(j))
	fmt.Fprintf(tw, "Datums:\t%d total: %d processed, %d skipped, %d failed\n", j.Total, j.Processed, j.Skipped, j.Failed)
}

func waitCmd(g *globals) *cobra.Command {
	var out output
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "wait REPO@REF [--timeout D]",
		Short: "Wait for every pipeline job downstream of a commit; exit 10 if one failed",
		Long: `Wait until every job that a commit sets off has finished: the jobs of the
pipelines that read the commit's repo, the jobs of the pipelines that read
their output, and so on down. The commit itself must be finished ('strata
commit wait' waits for that). Prints the jobs; exits 0 if all succeeded,
10 if any failed or was killed, 1 if --timeout ran out first.

  strata put images@main:/cat.png -f cat.png
  strata wait images@main && strata ls montage@main`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			r, cl, err := g.refClient(args[0])
			if err != nil {
				return err
			}
			if r.hasPath {
				return usagef("wait takes a commit, not a path: %s@%s", r.repo, r.ref)
			}
			ctx, cancel := withTimeout(c.Context(), timeout)
			defer cancel()
			js, err := cl.WaitCommitJobs(ctx, r.repo, r.ref)
			if err != nil {
				return waitError(err, timeout, "jobs downstream of "+r.String()+" are still running", "see 'strata commit list "+r.repo+"'")
			}
			if err := out.print(os.Stdout, js, func(tw *tabwriter.Writer) {
				if len(js) == 0 {
					fmt.Fprintf(os.Stderr, "no pipeline reads %s: nothing to wait for\n", r)
					return
				}
				jobTable(tw, js)
			}); err != nil {
				return err
			}
			return failedJobs(js)
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait forever)")
	out.flag(c)
	return c
}
