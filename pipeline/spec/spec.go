package spec

// Spec describes one pipeline. The field names follow Pachyderm's
// pipeline spec where the two overlap.
type Spec struct {
	Name        string    `json:"name" yaml:"name"`
	Description string    `json:"description,omitempty" yaml:"description,omitempty"`
	Transform   Transform `json:"transform" yaml:"transform"`
	Input       Input     `json:"input" yaml:"input"`
	// Parallelism is the number of worker containers (default 1).
	Parallelism int `json:"parallelism,omitempty" yaml:"parallelism,omitempty"`
	// DatumTries is how often a datum is tried before the job fails
	// (default 3).
	DatumTries int `json:"datum_tries,omitempty" yaml:"datum_tries,omitempty"`
	// DatumTimeout and JobTimeout are Go durations ("30s", "1h"); empty
	// means no limit.
	DatumTimeout Duration   `json:"datum_timeout,omitempty" yaml:"datum_timeout,omitempty"`
	JobTimeout   Duration   `json:"job_timeout,omitempty" yaml:"job_timeout,omitempty"`
	Resources    *Resources `json:"resources,omitempty" yaml:"resources,omitempty"`
	// Reprocess is "until_success" (default: reuse successful datums) or
	// "every_job" (run every datum of every job).
	Reprocess string `json:"reprocess,omitempty" yaml:"reprocess,omitempty"`
	// Service makes the pipeline a long-running server instead of a batch
	// job: one container, restarted on every new input commit.
	Service *Service `json:"service,omitempty" yaml:"service,omitempty"`
}

// Transform is what runs for each datum.
type Transform struct {
	Image string   `json:"image" yaml:"image"`
	Cmd   []string `json:"cmd" yaml:"cmd"`
	// Stdin lines are fed to Cmd's standard input, joined by newlines.
	Stdin      []string          `json:"stdin,omitempty" yaml:"stdin,omitempty"`
	Env        map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty" yaml:"working_dir,omitempty"`
	// User is "uid", "uid:gid" or a name from the image's /etc/passwd.
	User string `json:"user,omitempty" yaml:"user,omitempty"`
	// Network gives the container the host's network; off by default.
	Network bool `json:"network,omitempty" yaml:"network,omitempty"`
}

// Input is exactly one of its fields.
type Input struct {
	PFS   *PFSInput  `json:"pfs,omitempty" yaml:"pfs,omitempty"`
	Cross []Input    `json:"cross,omitempty" yaml:"cross,omitempty"`
	Union []Input    `json:"union,omitempty" yaml:"union,omitempty"`
	Join  []Input    `json:"join,omitempty" yaml:"join,omitempty"`
	Group []Input    `json:"group,omitempty" yaml:"group,omitempty"`
	Cron  *CronInput `json:"cron,omitempty" yaml:"cron,omitempty"`
}

// PFSInput reads a branch of a repo.
type PFSInput struct {
	Repo string `json:"repo" yaml:"repo"`
	// Branch defaults to "main".
	Branch string `json:"branch,omitempty" yaml:"branch,omitempty"`
	// Glob selects the datums: "/" (the whole repo is one datum), "/*"
	// (each top-level entry), "/*/*", "/**" (every file and directory at
	// any depth), or any pattern of path.Match per path component.
	Glob string `json:"glob" yaml:"glob"`
	// Name is the directory under /pfs (default: Repo).
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// JoinOn (inside join) and GroupBy (inside group) are built from the
	// glob's capture groups ("$1", "$2-$1"): the glob's wildcards, in
	// order, with parentheses marking groups, e.g. "/(*)-(*).csv".
	JoinOn  string `json:"join_on,omitempty" yaml:"join_on,omitempty"`
	GroupBy string `json:"group_by,omitempty" yaml:"group_by,omitempty"`
	// OuterJoin keeps this input's datums that match nothing in a join.
	OuterJoin bool `json:"outer_join,omitempty" yaml:"outer_join,omitempty"`
}

// CronInput ticks on a schedule: each tick is a commit to the repo
// <pipeline>_<name>, which the pipeline reads like any other input.
type CronInput struct {
	Name string `json:"name" yaml:"name"`
	// Spec is "@every DURATION", "@hourly", "@daily" or five cron fields
	// (minute hour day-of-month month day-of-week).
	Spec string `json:"spec" yaml:"spec"`
	// Overwrite keeps one tick file instead of one file per tick.
	Overwrite bool `json:"overwrite,omitempty" yaml:"overwrite,omitempty"`
}

// Resources limit each worker container.
type Resources struct {
	// CPU in cores: 0.5, "500m", 2.
	CPU Quantity `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	// Memory in bytes with Kubernetes suffixes: "512Mi", "2G".
	Memory Quantity `json:"memory,omitempty" yaml:"memory,omitempty"`
}

// Service turns the pipeline into a long-running server on a host port.
type Service struct {
	// Port the container listens on (it gets the host's network).
	Port int `json:"port" yaml:"port"`
}
