package spec

import "fmt"

// Default values that Defaults fills in.
const (
	DefaultParallelism = 1
	DefaultDatumTries  = 3
	DefaultBranch      = "main"
	DefaultCronName    = "tick"
	MaxParallelism     = 64
)

// Reprocess values.
const (
	// ReprocessUntilSuccess reuses the output of a datum that succeeded in
	// any earlier job with the same datum hash.
	ReprocessUntilSuccess = "until_success"
	// ReprocessEveryJob runs every datum of every job.
	ReprocessEveryJob = "every_job"
)

// Defaults fills in every unset field that has a default: parallelism 1,
// datum_tries 3, reprocess until_success, and in each input pfs.branch
// "main", pfs.name = pfs.repo and cron.name "tick". It is idempotent.
func (s *Spec) Defaults() {
	if s.Parallelism == 0 {
		s.Parallelism = DefaultParallelism
	}
	if s.DatumTries == 0 {
		s.DatumTries = DefaultDatumTries
	}
	if s.Reprocess == "" {
		s.Reprocess = ReprocessUntilSuccess
	}
	s.Input.Walk(func(_ string, in *Input) {
		if in.PFS != nil {
			*in.PFS = in.PFS.withDefaults()
		}
		if in.Cron != nil && in.Cron.Name == "" {
			in.Cron.Name = DefaultCronName
		}
	})
}

func (p PFSInput) withDefaults() PFSInput {
	if p.Branch == "" {
		p.Branch = DefaultBranch
	}
	if p.Name == "" {
		p.Name = p.Repo
	}
	return p
}

// Walk calls fn for in and then, depth first and in order, for every input
// nested in it. path is the input's field path from the spec's root:
// "input", "input.cross[0]", "input.cross[1].union[0]". fn may modify the
// input it is given but not add or remove nested inputs.
func (in *Input) Walk(fn func(path string, in *Input)) {
	in.walk("input", fn)
}

func (in *Input) walk(path string, fn func(string, *Input)) {
	fn(path, in)
	for _, list := range []struct {
		kind   string
		inputs []Input
	}{{"cross", in.Cross}, {"union", in.Union}, {"join", in.Join}, {"group", in.Group}} {
		for i := range list.inputs {
			list.inputs[i].walk(fmt.Sprintf("%s.%s[%d]", path, list.kind, i), fn)
		}
	}
}

// name is the input's directory under /pfs: a pfs input's name (default
// its repo) or a cron input's name (default "tick"); "" for the others.
func (in *Input) name() string {
	switch {
	case in.PFS != nil:
		return in.PFS.withDefaults().Name
	case in.Cron != nil:
		if in.Cron.Name == "" {
			return DefaultCronName
		}
		return in.Cron.Name
	}
	return ""
}

// InputNames returns the names of the spec's pfs and cron inputs, which
// are their directories under /pfs, in Walk order. Defaults need not have
// been applied.
func (s *Spec) InputNames() []string {
	var names []string
	s.Input.Walk(func(_ string, in *Input) {
		if n := in.name(); n != "" {
			names = append(names, n)
		}
	})
	return names
}

// Repos returns a copy of every pfs input of the spec, in Walk order, with
// its defaults (branch, name) filled in.
func (s *Spec) Repos() []PFSInput {
	var repos []PFSInput
	s.Input.Walk(func(_ string, in *Input) {
		if in.PFS != nil {
			repos = append(repos, in.PFS.withDefaults())
		}
	})
	return repos
}

// CronRepo returns the name of the repo that receives c's ticks:
// "<pipeline>_<cron name>".
func (s *Spec) CronRepo(c *CronInput) string {
	name := c.Name
	if name == "" {
		name = DefaultCronName
	}
	return s.Name + "_" + name
}
