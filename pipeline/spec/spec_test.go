package spec

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const fullYAML = `# every field
name: edges
description: find edges
transform:
  image: strata/edges:1
  cmd: [sh, -c, "edges /pfs/images /pfs/out"]
  stdin: [line one, line two]
  env:
    MODE: fast
    _X1: "2"
  working_dir: /work
  user: "1000:1000"
  network: true
input:
  pfs:
    repo: images
    branch: dev
    glob: /*
    name: pics
parallelism: 4
datum_tries: 2
datum_timeout: 30s
job_timeout: 3600
resources:
  cpu: 500m
  memory: 512Mi
reprocess: every_job
`

func parseOne(t *testing.T, in string) *Spec {
	t.Helper()
	specs, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(specs) != 1 {
		t.Fatalf("got %d specs, want 1", len(specs))
	}
	return specs[0]
}

func TestParseFull(t *testing.T) {
	got := parseOne(t, fullYAML)
	want := &Spec{
		Name:        "edges",
		Description: "find edges",
		Transform: Transform{
			Image:      "strata/edges:1",
			Cmd:        []string{"sh", "-c", "edges /pfs/images /pfs/out"},
			Stdin:      []string{"line one", "line two"},
			Env:        map[string]string{"MODE": "fast", "_X1": "2"},
			WorkingDir: "/work",
			User:       "1000:1000",
			Network:    true,
		},
		Input:        Input{PFS: &PFSInput{Repo: "images", Branch: "dev", Glob: "/*", Name: "pics"}},
		Parallelism:  4,
		DatumTries:   2,
		DatumTimeout: Duration{30 * time.Second},
		JobTimeout:   Duration{time.Hour},
		Resources:    &Resources{CPU: "500m", Memory: "512Mi"},
		Reprocess:    ReprocessEveryJob,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}

	// JSON (encoding/json) and YAML round trips give the same spec.
	js, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if back := parseOne(t, string(js)); !reflect.DeepEqual(back, want) {
		t.Errorf("after JSON round trip (%s) got\n%+v", js, back)
	}
	var viaJSON Spec
	if err := json.Unmarshal(js, &viaJSON); err != nil || !reflect.DeepEqual(&viaJSON, want) {
		t.Errorf("json.Unmarshal: %v\n%+v", err, viaJSON)
	}
	ys, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if back := parseOne(t, string(ys)); !reflect.DeepEqual(back, want) {
		t.Errorf("after YAML round trip (%s) got\n%+v", ys, back)
	}
	if !strings.Contains(string(ys), "datum_timeout: 30s") || !strings.Contains(string(js), `"job_timeout":"1h0m0s"`) {
		t.Errorf("durations not written as strings:\n%s\n%s", ys, js)
	}
}

func TestParseDefaults(t *testing.T) {
	s := parseOne(t, `
name: p
transform: {image: busybox, cmd: [true]}
input:
  cross:
  - pfs: {repo: a, glob: /*}
  - cron: {spec: "@every 1h"}
`)
	if s.Parallelism != 1 || s.DatumTries != 3 || s.Reprocess != ReprocessUntilSuccess {
		t.Errorf("got parallelism %d, datum_tries %d, reprocess %q; want 1, 3, until_success", s.Parallelism, s.DatumTries, s.Reprocess)
	}
	if p := s.Input.Cross[0].PFS; p.Branch != "main" || p.Name != "a" {
		t.Errorf("pfs defaults: got branch %q name %q, want main, a", p.Branch, p.Name)
	}
	if c := s.Input.Cross[1].Cron; c.Name != "tick" || s.CronRepo(c) != "p_tick" {
		t.Errorf("cron defaults: got name %q repo %q, want tick, p_tick", c.Name, s.CronRepo(c))
	}
	before := *s
	s.Defaults()
	if !reflect.DeepEqual(*s, before) {
		t.Errorf("Defaults is not idempotent")
	}
}

// TestParseGood parses valid inputs of every shape and input kind and
// checks the pipeline names and input names it finds.
func TestParseGood(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   []string // pipeline names
		inputs []string // InputNames of the first spec
	}{
		{"json object", `{
	"name": "j",
	"transform": {"image": "busybox", "cmd": ["sh", "-c", "cp \/pfs\/a\/* /pfs/out/ \u00e9"]},
	"input": {"pfs": {"repo": "a", "glob": "/*"}},
	"datum_timeout": 1.5,
	"resources": {"cpu": 0.5, "memory": 1e9}
}`, []string{"j"}, []string{"a"}},
		{"json array", `[
  {"name": "a1", "transform": {"image": "i", "cmd": ["x"]}, "input": {"pfs": {"repo": "r", "glob": "/"}}},
  {"name": "a2", "transform": {"image": "i", "cmd": ["x"]}, "input": {"pfs": {"repo": "a1", "glob": "/*"}}}
]`, []string{"a1", "a2"}, []string{"r"}},
		{"json concatenated", `{"name": "c1", "transform": {"image": "i", "cmd": ["x"]}, "input": {"pfs": {"repo": "r", "glob": "/"}}}
{"name": "c2", "transform": {"image": "i", "cmd": ["x"]}, "input": {"pfs": {"repo": "r", "glob": "/"}}}`,
			[]string{"c1", "c2"}, []string{"r"}},
		{"yaml flow", `{name: f, transform: {image: i, cmd: [x]}, input: {pfs: {repo: r, glob: /}}}`,
			[]string{"f"}, []string{"r"}},
		{"multi-document yaml", `---
name: m1
transform: {image: i, cmd: [x]}
input: {pfs: {repo: r, glob: "/*"}}
---
# second
name: m2
transform: {image: i, cmd: [x]}
input: {pfs: {repo: m1, glob: "/**"}}
---
`, []string{"m1", "m2"}, []string{"r"}},
		{"yaml list", `
- name: l1
  transform: {image: i, cmd: [x]}
  input: {pfs: {repo: r, glob: "/*"}}
- name: l2
  transform: {image: i, cmd: [x]}
  input: {pfs: {repo: r, glob: "/*"}}
`, []string{"l1", "l2"}, []string{"r"}},
		{"cross", `
name: x
transform: {image: i, cmd: [x]}
input:
  cross:
  - pfs: {repo: images, glob: "/*"}
  - pfs: {repo: models, glob: "/", name: model}
`, []string{"x"}, []string{"images", "model"}},
		{"cross of one repo twice", `
name: x
transform: {image: i, cmd: [x]}
input:
  cross:
  - pfs: {repo: a, glob: "/*", name: left}
  - pfs: {repo: a, glob: "/*", name: right}
`, []string{"x"}, []string{"left", "right"}},
		{"union", `
name: u
transform: {image: i, cmd: [x]}
input:
  union:
  - pfs: {repo: a, glob: "/*"}
  - pfs: {repo: b, glob: "/*/*.csv"}
  - cross:
    - pfs: {repo: c, glob: "/[a-z]?"}
    - pfs: {repo: d, glob: "/\\(x\\)"}
`, []string{"u"}, []string{"a", "b", "c", "d"}},
		{"join", `
name: j
transform: {image: i, cmd: [x]}
input:
  join:
  - pfs: {repo: readings, glob: "/(*)-(*).csv", join_on: "$2-$1"}
  - pfs: {repo: params, glob: "/(*)/(*)/**", join_on: "$2-$1", outer_join: true}
`, []string{"j"}, []string{"readings", "params"}},
		{"group", `
name: g
transform: {image: i, cmd: [x]}
input:
  group:
  - pfs: {repo: logs, glob: "/*/(*).log", group_by: "$1"}
`, []string{"g"}, []string{"logs"}},
		{"cron", `
name: c
transform: {image: i, cmd: [x]}
input:
  cron: {name: nightly, spec: "0 3 * * 1-5", overwrite: true}
`, []string{"c"}, []string{"nightly"}},
		{"service", `
name: web
transform: {image: nginx, cmd: [nginx, -g, "daemon off;"]}
input: {pfs: {repo: site, glob: /}}
service: {port: 8080}
`, []string{"web"}, []string{"site"}},
		{"yaml merge keys", `
name: mk
transform: {image: i, cmd: [x]}
input:
  cross:
  - pfs: &base {repo: a, glob: "/*"}
  - pfs:
      <<: *base
      name: a2
`, []string{"mk"}, []string{"a", "a2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Parse([]byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var names []string
			for _, s := range specs {
				names = append(names, s.Name)
			}
			if !reflect.DeepEqual(names, tt.want) {
				t.Errorf("got pipelines %q, want %q", names, tt.want)
			}
			if got := specs[0].InputNames(); !reflect.DeepEqual(got, tt.inputs) {
				t.Errorf("got inputs %q, want %q", got, tt.inputs)
			}
		})
	}
}

func TestParseJSONValues(t *testing.T) {
	s := parseOne(t, `{"name": "j", "transform": {"image": "i", "cmd": ["x"]}, "input": {"pfs": {"repo": "a", "glob": "/*"}},
		"datum_timeout": 1.5, "job_timeout": "2h", "resources": {"cpu": 0.5, "memory": 1e9}}`)
	if s.DatumTimeout.Duration != 1500*time.Millisecond || s.JobTimeout.Duration != 2*time.Hour {
		t.Errorf("got timeouts %v, %v; want 1.5s, 2h", s.DatumTimeout, s.JobTimeout)
	}
	if s.Resources.CPU != "0.5" || s.Resources.Memory != "1e9" {
		t.Errorf("got resources %q %q, want 0.5 1e9", s.Resources.CPU, s.Resources.Memory)
	}
}

const head = "transform: {image: i, cmd: [x]}\n"

// TestParseBad checks that each bad input is rejected with an error that
// contains every want string: the spec, the field, the line.
func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{"no pipeline spec found"}},
		{"only comments", "# nothing\n---\n", []string{"no pipeline spec found"}},
		{"not a mapping", "just text\n", []string{`line 1: want a pipeline spec (a mapping of fields), got "just text"`}},
		{"yaml syntax", "name: a\n  transform: b: c\n", []string{"line 2:"}},
		{"json syntax", "{\n  \"name\": \"a\",\n  \"transform\": {\"image\": \"i\" \"cmd\": []}\n}", []string{"line 3: invalid character '\"' after object key:value pair"}},
		{"json truncated", "{\n  \"name\": \"a\",\n", []string{"unexpected end of JSON input"}},
		{"unknown field", `name: edges
transform:
  image: i
  cmd: [x]
input: {pfs: {repo: a, glob: /}}
transform2: 1
`, []string{`pipeline "edges": line 6: unknown field "transform2"; did you mean "transform"?`}},
		{"unknown field in transform", `name: edges
input:
  pfs: {repo: a, glob: /}
transform:
  image: i
  cmd: [x]
  foo: bar
`, []string{`pipeline "edges": line 7: unknown field "foo" in transform`}},
		{"unknown field nested", `name: edges
transform: {image: i, cmd: [x]}
input:
  cross:
  - pfs: {repo: a, glob: /}
  - pfs:
      repo: b
      globb: /*
`, []string{`line 8: unknown field "globb" in input.cross[1].pfs; did you mean "glob"?`}},
		{"unknown field camel case", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\ndatumTries: 2\n",
			[]string{`line 4: unknown field "datumTries"; did you mean "datum_tries"?`}},
		{"unknown field json", `{
  "name": "j",
  "transform": {"image": "i", "cmd": ["x"]},
  "input": {"pfs": {"repo": "a", "glob": "/", "branh": "dev"}}
}`, []string{`pipeline "j": line 4: unknown field "branh" in input.pfs; did you mean "branch"?`}},
		{"unknown fields in two specs", `name: a
bad1: 1
---
bad2: 2
`, []string{`pipeline "a": line 2: unknown field "bad1"`, `pipeline #2: line 4: unknown field "bad2"`}},
		{"wrong type", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\nparallelism: many\n",
			[]string{`line 4: parallelism: want an integer, got "many"`}},
		{"cmd not a list", "name: p\ntransform:\n  image: i\n  cmd: echo hi\n",
			[]string{`line 4: transform.cmd: want a list, got "echo hi"`}},
		{"env not a map", "name: p\ntransform: {image: i, cmd: [x], env: [A]}\n",
			[]string{`line 2: transform.env: want a mapping, got a list`}},
		{"bad duration", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\ndatum_timeout: soon\n",
			[]string{`line 4: datum_timeout: "soon" is not a duration`}},
		{"bad quantity type", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\nresources: {cpu: [1]}\n",
			[]string{`line 4: resources.cpu: want a quantity`}},
		{"field twice", "name: p\n" + head + "input: {pfs: {repo: a, glob: /, repo: b}}\n",
			[]string{`line 3: field "repo" in input.pfs is set twice (first on line 3)`}},
		{"no name", head + "input: {pfs: {repo: a, glob: /}}\n", []string{"pipeline #1: name: required"}},
		{"bad name", "name: a/b\n" + head + "input: {pfs: {repo: a, glob: /}}\n",
			[]string{`pipeline "a/b": name: pipeline name "a/b" has character '/'`}},
		{"name starts with dot", "name: .p\n" + head + "input: {pfs: {repo: a, glob: /}}\n", []string{`name: pipeline name ".p" starts with '.'`}},
		{"name too long", "name: " + strings.Repeat("n", 64) + "\n" + head + "input: {pfs: {repo: a, glob: /}}\n", []string{"name: pipeline name", "longer than 63"}},
		{"no image or cmd", "name: p\ntransform: {}\ninput: {pfs: {repo: a, glob: /}}\n",
			[]string{"transform.image: required", "transform.cmd: required"}},
		{"empty program", "name: p\ntransform: {image: i, cmd: ['']}\ninput: {pfs: {repo: a, glob: /}}\n",
			[]string{"transform.cmd[0]: the program to run must not be empty"}},
		{"bad env and user and dir", "name: p\ntransform: {image: i, cmd: [x], env: {1X: a, A-B: b}, user: Root, working_dir: rel}\ninput: {pfs: {repo: a, glob: /}}\n",
			[]string{`transform.env["1X"]: not a valid variable name`, `transform.env["A-B"]`, `transform.user: "Root" is not a user`, `transform.working_dir: "rel" must be an absolute path`}},
		{"uid too big", "name: p\ntransform: {image: i, cmd: [x], user: '1:99999999999'}\ninput: {pfs: {repo: a, glob: /}}\n",
			[]string{`transform.user: "1:99999999999" is not a user`}},
		{"no input", "name: p\n" + head, []string{"input: required: set one of pfs, cross, union, join, group or cron"}},
		{"two kinds", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}, cron: {spec: '@daily'}}\n",
			[]string{"input: pfs and cron are both set; an input is exactly one of"}},
		{"three kinds", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}, union: [], cron: {spec: '@daily'}}\n",
			[]string{"input: pfs, union and cron are all set"}},
		{"cross of one", "name: p\n" + head + "input: {cross: [{pfs: {repo: a, glob: /}}]}\n",
			[]string{"input.cross: has 1 inputs; a cross needs at least 2"}},
		{"empty union", "name: p\n" + head + "input: {union: []}\n", []string{"input.union: has 0 inputs; a union needs at least 1"}},
		{"empty nested input", "name: p\n" + head + "input: {union: [{}]}\n", []string{"input.union[0]: required"}},
		{"glob without slash", `name: edges
` + head + `input:
  cross:
  - pfs: {repo: a, glob: /}
  - pfs: {repo: b, glob: "*"}
`, []string{`pipeline "edges": input.cross[1].pfs.glob: must start with "/"`}},
		{"no glob", "name: p\n" + head + "input: {pfs: {repo: a}}\n", []string{"input.pfs.glob: required"}},
		{"bad glob pattern", "name: p\n" + head + "input: {pfs: {repo: a, glob: '/[a'}}\n", []string{`input.pfs.glob: "/[a": component "[a" is not a valid pattern`}},
		{"double star in component", "name: p\n" + head + "input: {pfs: {repo: a, glob: '/a**'}}\n", []string{`"**" must be a whole path component`}},
		{"empty glob component", "name: p\n" + head + "input: {pfs: {repo: a, glob: '/a//b'}}\n", []string{"empty path component"}},
		{"dotdot glob", "name: p\n" + head + "input: {pfs: {repo: a, glob: '/../x'}}\n", []string{`has a ".." component`}},
		{"groups outside join", "name: p\n" + head + "input: {pfs: {repo: a, glob: '/(*)'}}\n", []string{`input.pfs.glob: "/(*)" has capture groups, which only join_on and group_by use`}},
		{"unbalanced group", "name: p\n" + head + "input: {join: [{pfs: {repo: a, glob: '/(*', join_on: $1}}, {pfs: {repo: b, glob: '/*)', join_on: $1}}]}\n",
			[]string{`input.join[0].pfs.glob: "/(*" has a "(" without a ")"`, `input.join[1].pfs.glob: "/*)" has a ")" without a "("`}},
		{"join_on outside join", "name: p\n" + head + "input: {pfs: {repo: a, glob: '/*', join_on: $1, group_by: $1, outer_join: true}}\n",
			[]string{"input.pfs.join_on: only used in an input inside a join", "input.pfs.group_by: only used in an input inside a group", "input.pfs.outer_join: only used in an input inside a join"}},
		{"join without join_on", "name: p\n" + head + "input: {join: [{pfs: {repo: a, glob: '/(*)', join_on: $1}}, {pfs: {repo: b, glob: '/(*)'}}]}\n",
			[]string{"input.join[1].pfs.join_on: required inside a join"}},
		{"join_on bad group", "name: p\n" + head + "input: {join: [{pfs: {repo: a, glob: '/(*)-(*).csv', join_on: $3}}, {pfs: {repo: b, glob: '/(*)', join_on: $0}}]}\n",
			[]string{`input.join[0].pfs.join_on: "$3": $3 refers to capture group 3, but glob "/(*)-(*).csv" has 2`, `input.join[1].pfs.join_on: "$0": capture groups are numbered from $1`}},
		{"join_on bare dollar", "name: p\n" + head + "input: {join: [{pfs: {repo: a, glob: '/(*)', join_on: $x}}, {pfs: {repo: b, glob: '/(*)', join_on: $1}}]}\n",
			[]string{`input.join[0].pfs.join_on: "$x": "$" must be followed by a group number`}},
		{"join of one", "name: p\n" + head + "input: {join: [{pfs: {repo: a, glob: '/(*)', join_on: $1}}]}\n",
			[]string{"input.join: has 1 inputs; a join needs at least 2"}},
		{"join of cross", "name: p\n" + head + "input: {join: [{pfs: {repo: a, glob: '/(*)', join_on: $1}}, {cross: []}]}\n",
			[]string{"input.join[1]: every element of a join is a pfs input with join_on, not a cross"}},
		{"group without group_by", "name: p\n" + head + "input: {group: [{pfs: {repo: a, glob: '/(*)'}}]}\n",
			[]string{"input.group[0].pfs.group_by: required inside a group"}},
		{"same input name", "name: p\n" + head + "input: {cross: [{pfs: {repo: a, glob: /}}, {union: [{pfs: {repo: a, glob: '/*'}}]}]}\n",
			[]string{`input.cross[1].union[0]: the name "a" is already used by input.cross[0]; inputs need distinct names (set name)`}},
		{"cron and pfs same name", "name: p\n" + head + "input: {cross: [{pfs: {repo: tick, glob: /}}, {cron: {spec: '@daily'}}]}\n",
			[]string{`input.cross[1]: the name "tick" is already used by input.cross[0]`}},
		{"input named out", "name: p\n" + head + "input: {pfs: {repo: out, glob: /}}\n", []string{`input: the name "out" is taken by the output directory`}},
		{"bad repo and branch", "name: p\n" + head + "input: {pfs: {repo: 'a:b', branch: 'x^', glob: /, name: 'n@'}}\n",
			[]string{`input.pfs.repo: repo name "a:b" has character ':'`, `input.pfs.branch: branch name "x^" has character '^'`, `input.pfs.name: input name "n@" has character '@'`}},
		{"no repo", "name: p\n" + head + "input: {pfs: {glob: /}}\n", []string{"input.pfs.repo: required"}},
		{"own output", "name: p\n" + head + "input: {pfs: {repo: p, glob: /}}\n", []string{`input.pfs.repo: "p" is this pipeline's own output repo`}},
		{"bad cron", "name: p\n" + head + "input: {cron: {spec: '61 * * * *'}}\n", []string{`input.cron.spec: "61 * * * *": minute field "61": 61 is out of range 0-59`}},
		{"no cron spec", "name: p\n" + head + "input: {cron: {name: c}}\n", []string{"input.cron.spec: required"}},
		{"cron repo too long", "name: " + strings.Repeat("p", 60) + "\n" + head + "input: {cron: {spec: '@daily'}}\n",
			[]string{`input.cron.name: cron repo name "` + strings.Repeat("p", 60) + `_tick" is longer than 63 characters`}},
		{"numbers out of range", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\nparallelism: 65\ndatum_tries: -1\ndatum_timeout: -1s\njob_timeout: -5\nreprocess: always\n",
			[]string{"parallelism: 65 is out of range; use 1 to 64", "datum_tries: -1 is not allowed", "datum_timeout: -1s is negative", "job_timeout: -5s is negative", `reprocess: "always" is not one of "until_success" or "every_job"`}},
		{"negative parallelism", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\nparallelism: -2\n", []string{"parallelism: -2 is out of range"}},
		{"bad resources", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\nresources: {cpu: 0, memory: lots}\n",
			[]string{`resources.cpu: "0" must be more than 0 cores`, `resources.memory: "lots" is not a quantity`}},
		{"bad service", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\nservice: {port: 70000}\nparallelism: 2\n",
			[]string{"service.port: 70000 is out of range; use 1 to 65535", "parallelism: a service runs one container"}},
		{"same pipeline twice", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\n---\nname: q\n" + head + "input: {pfs: {repo: a, glob: /}}\n---\nname: p\n" + head + "input: {pfs: {repo: b, glob: /}}\n",
			[]string{`pipeline "p": name: pipeline #1 in this input has the same name`}},
		{"second spec by index", "name: p\n" + head + "input: {pfs: {repo: a, glob: /}}\n---\n" + head + "input: {pfs: {repo: a, glob: x}}\n",
			[]string{"pipeline #2: name: required", `pipeline #2: input.pfs.glob: must start with "/"`}},
		{"list element not a mapping", "- name: p\n- 3\n", []string{"line 2: want a pipeline spec (a mapping of fields), got 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded (%d specs), want an error containing %q", len(specs), tt.want)
			}
			if specs != nil {
				t.Errorf("got %d specs with the error, want none", len(specs))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			if !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("error %v is not fs.ErrInvalid", err)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	s := &Spec{Name: "p", Transform: Transform{Image: "i", Cmd: []string{"x"}},
		Input: Input{PFS: &PFSInput{Repo: "a", Glob: "/*"}}}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate before Defaults: %v", err)
	}
	s.Input.PFS.Glob = "*"
	err := s.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "input.pfs.glob" || fe.Msg != `must start with "/"` {
		t.Fatalf("got %#v, want one *FieldError for input.pfs.glob", err)
	}
	s.Transform.Image = ""
	err = s.Validate()
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) != 2 {
		t.Fatalf("got %v, want two joined errors", err)
	}
	for _, e := range j.Unwrap() {
		if _, ok := e.(*FieldError); !ok {
			t.Errorf("%T is not a *FieldError", e)
		}
	}
	if got := err.Error(); got != "transform.image: required: the container image to run, e.g. \"busybox:latest\"\ninput.pfs.glob: must start with \"/\"" {
		t.Errorf("got %q", got)
	}
}

func TestWalkAndRepos(t *testing.T) {
	s := parseOne(t, `
name: w
transform: {image: i, cmd: [x]}
input:
  cross:
  - union:
    - pfs: {repo: a, glob: /*}
    - pfs: {repo: b, branch: dev, glob: /*}
  - join:
    - pfs: {repo: c, glob: "/(*)", join_on: $1}
    - pfs: {repo: a, name: a2, glob: "/(*)", join_on: $1}
  - cron: {spec: "@daily"}
`)
	var paths []string
	s.Input.Walk(func(p string, in *Input) { paths = append(paths, p) })
	want := []string{"input", "input.cross[0]", "input.cross[0].union[0]", "input.cross[0].union[1]",
		"input.cross[1]", "input.cross[1].join[0]", "input.cross[1].join[1]", "input.cross[2]"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("Walk visited\n%q\nwant\n%q", paths, want)
	}
	if got, want := s.InputNames(), []string{"a", "b", "c", "a2", "tick"}; !reflect.DeepEqual(got, want) {
		t.Errorf("InputNames: got %q, want %q", got, want)
	}
	var repos []string
	for _, r := range s.Repos() {
		repos = append(repos, r.Name+"="+r.Repo+"@"+r.Branch+":"+r.Glob)
	}
	if want := []string{"a=a@main:/*", "b=b@dev:/*", "c=c@main:/(*)", "a2=a@main:/(*)"}; !reflect.DeepEqual(repos, want) {
		t.Errorf("Repos: got %q, want %q", repos, want)
	}

	// Repos fills in defaults on its copies without changing the spec.
	raw := &Spec{Input: Input{PFS: &PFSInput{Repo: "r", Glob: "/"}}}
	if r := raw.Repos(); r[0].Branch != "main" || r[0].Name != "r" || raw.Input.PFS.Branch != "" {
		t.Errorf("Repos on a spec without defaults: %+v, spec %+v", r, raw.Input.PFS)
	}
}

func TestCronNext(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec string
		from string
		want []string // successive activations
	}{
		{"*/15 * * * *", "2026-03-10T10:07:12Z", []string{"2026-03-10T10:15:00Z", "2026-03-10T10:30:00Z", "2026-03-10T10:45:00Z", "2026-03-10T11:00:00Z"}},
		{"*/15 * * * *", "2026-03-10T10:15:00Z", []string{"2026-03-10T10:30:00Z"}},
		// 2026-01-02 is a Friday.
		{"0 3 * * 1-5", "2026-01-02T02:59:59Z", []string{"2026-01-02T03:00:00Z", "2026-01-05T03:00:00Z", "2026-01-06T03:00:00Z"}},
		{"0 3 * * mon-fri", "2026-01-02T03:00:00Z", []string{"2026-01-05T03:00:00Z"}},
		{"@every 90s", "2026-01-01T00:00:00Z", []string{"2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z", "2026-01-01T00:04:30Z"}},
		{"@every 1h", "2026-05-05T07:59:59.9Z", []string{"2026-05-05T08:00:00Z", "2026-05-05T09:00:00Z"}},
		{"@hourly", "2026-01-01T00:00:00Z", []string{"2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"}},
		{"@daily", "2026-02-28T12:00:00Z", []string{"2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"}},
		{"@weekly", "2026-01-01T00:00:00Z", []string{"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"}},
		{"@monthly", "2026-01-31T00:00:00Z", []string{"2026-02-01T00:00:00Z"}},
		// Both day fields restricted: the 13th or any Friday.
		{"0 0 13 * 5", "2026-02-01T00:00:00Z", []string{"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z"}},
		// Day of week "*": only the day of month counts.
		{"0 0 1 * *", "2026-01-15T00:00:00Z", []string{"2026-02-01T00:00:00Z"}},
		{"0 0 1 * */2", "2026-01-15T00:00:00Z", []string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
		{"0 12 * * 7", "2026-01-01T00:00:00Z", []string{"2026-01-04T12:00:00Z"}},
		{"0 0 29 2 *", "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"30 1-5/2 * * *", "2026-01-01T00:00:00Z", []string{"2026-01-01T01:30:00Z", "2026-01-01T03:30:00Z", "2026-01-01T05:30:00Z", "2026-01-02T01:30:00Z"}},
		{"5/20 * * * *", "2026-01-01T00:00:00Z", []string{"2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:05:00Z"}},
		{"0 0 1 jan,JUL *", "2026-02-01T00:00:00Z", []string{"2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"}},
		{"59 23 31 12 *", "2026-12-31T23:59:00Z", []string{"2027-12-31T23:59:00Z"}},
		// Times in other zones are taken in UTC.
		{"0 * * * *", "2026-01-01T10:30:00+02:00", []string{"2026-01-01T09:00:00Z"}},
	}
	for _, tt := range tests {
		sched, err := ParseCron(tt.spec)
		if err != nil {
			t.Errorf("ParseCron(%q): %v", tt.spec, err)
			continue
		}
		cur := at(tt.from)
		for _, w := range tt.want {
			next := sched.Next(cur)
			if !next.Equal(at(w)) || next.Location() != time.UTC {
				t.Errorf("%q: Next(%s) = %s, want %s", tt.spec, cur.Format(time.RFC3339), next, w)
				break
			}
			cur = next
		}
	}
}

func TestParseCronBad(t *testing.T) {
	for spec, want := range map[string]string{
		"":               "empty cron spec",
		"* * * *":        "has 4 fields; want 5",
		"* * * * * *":    "has 6 fields",
		"60 * * * *":     `minute field "60": 60 is out of range 0-59`,
		"* 24 * * *":     `hour field "24": 24 is out of range 0-23`,
		"* * 0 * *":      `day-of-month field "0": 0 is out of range 1-31`,
		"* * * 13 *":     `month field "13"`,
		"* * * * 8":      `day-of-week field "8"`,
		"5-1 * * * *":    "range 5-1 runs backwards",
		"*/0 * * * *":    `step "0" is not a positive number`,
		"a * * * *":      `"a" is not a number`,
		"1,,2 * * * *":   `"" is not a number`,
		"0 0 30 2 *":     "never fires",
		"@every 500ms":   "at least 1s",
		"@every":         "want \"@every DURATION\"",
		"@every soon":    "want \"@every DURATION\"",
		"@often":         "unknown shorthand",
		"* * * foo *":    `"foo" is not a number`,
		"0 0 31 4,6,9 *": "never fires",
	} {
		if _, err := ParseCron(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCron(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
}

func TestQuantity(t *testing.T) {
	cores := map[Quantity]float64{"500m": 0.5, "2": 2, "1.5": 1.5, "0.25": 0.25, "100m": 0.1, "": 0, "1e-1": 0.1}
	for q, want := range cores {
		if got, err := q.Cores(); err != nil || got != want {
			t.Errorf("Quantity(%q).Cores() = %v, %v; want %v", q, got, err, want)
		}
	}
	bytes := map[Quantity]int64{
		"512Mi": 512 << 20, "2G": 2e9, "1e9": 1e9, "100": 100, "1.5Gi": 3 << 29, "1Ki": 1024,
		"64k": 64000, "3E": 3e18, "1E3": 1000, "7Ei": 7 << 60, "2.5": 3, "": 0, "-1": -1,
	}
	for q, want := range bytes {
		if got, err := q.Bytes(); err != nil || got != want {
			t.Errorf("Quantity(%q).Bytes() = %v, %v; want %v", q, got, err, want)
		}
	}
	for _, q := range []Quantity{"lots", "1/2", "0x10", "Mi", "1.2.3", "1e", "1e99999", "1 Mi", "8Ei", "5KB"} {
		if n, err := q.Bytes(); err == nil {
			t.Errorf("Quantity(%q).Bytes() = %d, want an error", q, n)
		}
	}
	if _, err := Quantity("2 cores").Cores(); err == nil {
		t.Errorf(`Quantity("2 cores").Cores() succeeded`)
	}

	// Numbers and strings both read as written.
	var r Resources
	if err := yaml.Unmarshal([]byte("cpu: 1.5\nmemory: 1e9\n"), &r); err != nil || r.CPU != "1.5" || r.Memory != "1e9" {
		t.Errorf("yaml: %v %+v", err, r)
	}
	if err := json.Unmarshal([]byte(`{"cpu": 2, "memory": "512Mi"}`), &r); err != nil || r.CPU != "2" || r.Memory != "512Mi" {
		t.Errorf("json: %v %+v", err, r)
	}
	if err := json.Unmarshal([]byte(`{"cpu": true}`), &r); err == nil {
		t.Errorf("json true read as a quantity")
	}
	out, err := json.Marshal(Resources{CPU: "2", Memory: "512Mi"})
	if err != nil || string(out) != `{"cpu":"2","memory":"512Mi"}` {
		t.Errorf("json.Marshal: %s, %v", out, err)
	}
	y, err := yaml.Marshal(Resources{CPU: "2"})
	if err != nil || string(y) != "cpu: \"2\"\n" {
		t.Errorf("yaml.Marshal: %q, %v", y, err)
	}
}

func TestDuration(t *testing.T) {
	good := map[string]time.Duration{
		`"30s"`: 30 * time.Second, `"1h30m"`: 90 * time.Minute, `90`: 90 * time.Second,
		`1.5`: 1500 * time.Millisecond, `"45"`: 45 * time.Second, `""`: 0, `"-2s"`: -2 * time.Second,
	}
	for in, want := range good {
		var j struct{ D Duration }
		if err := json.Unmarshal([]byte(`{"D": `+in+`}`), &j); err != nil || j.D.Duration != want {
			t.Errorf("json %s: got %v, %v; want %v", in, j.D, err, want)
		}
		var y struct{ D Duration }
		if err := yaml.Unmarshal([]byte("d: "+in), &y); err != nil || y.D.Duration != want {
			t.Errorf("yaml %s: got %v, %v; want %v", in, y.D, err, want)
		}
	}
	for _, in := range []string{`"soon"`, `true`, `[1]`, `1e300`} {
		var j struct{ D Duration }
		if err := json.Unmarshal([]byte(`{"D": `+in+`}`), &j); err == nil {
			t.Errorf("json %s: got %v, want an error", in, j.D)
		}
		var y struct{ D Duration }
		if err := yaml.Unmarshal([]byte("d: "+in), &y); err == nil {
			t.Errorf("yaml %s: got %v, want an error", in, y.D)
		}
	}
	d := Duration{90 * time.Minute}
	if b, _ := json.Marshal(d); string(b) != `"1h30m0s"` {
		t.Errorf("json.Marshal = %s", b)
	}
	if b, _ := yaml.Marshal(d); string(b) != "1h30m0s\n" {
		t.Errorf("yaml.Marshal = %q", b)
	}
	if b, _ := yaml.Marshal(Spec{Name: "p"}); strings.Contains(string(b), "timeout") {
		t.Errorf("yaml.Marshal wrote unset timeouts:\n%s", b)
	}
}

// TestDocExamples parses every YAML and JSON example of
// docs/pipeline-spec.md.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/pipeline-spec.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(doc), "\n```")[1:] {
		lang, body, _ := strings.Cut(block, "\n")
		if lang != "yaml" && lang != "json" {
			continue
		}
		n++
		if _, err := Parse([]byte(body)); err != nil {
			t.Errorf("example %d (%s):\n%s\n%v", n, lang, body, err)
		}
	}
	if n < 8 {
		t.Errorf("found %d examples, want at least 8", n)
	}
}
