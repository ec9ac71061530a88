// Package spec is the pipeline specification: one Go struct read from YAML
// or JSON, unknown fields rejected by name and line, every field checked
// with errors that name it.
//
// A Spec names a pipeline, which is also the name of its output repo, and
// says what runs (its Transform) on what (its Input). An Input is exactly
// one of:
//
//   - pfs: a branch of a repo, cut into datums by a glob;
//   - cross: every combination of one datum from each of its inputs;
//   - union: every datum of every one of its inputs;
//   - join: pfs inputs whose datums are combined when the keys built from
//     their globs' capture groups (join_on) are equal;
//   - group: pfs inputs whose datums are gathered into one datum per key
//     (group_by);
//   - cron: a repo "<pipeline>_<name>" that receives a commit on a
//     schedule.
//
// Every pfs and cron input has a name, its directory under /pfs in the
// container; names are unique within a spec and never "out". A field is
// named by its path from the spec's root, as in "input.cross[1].pfs.glob";
// Walk visits inputs with those paths.
//
// Parse is the way in: it returns specs with Defaults applied that pass
// Validate, or errors (all matching fs.ErrInvalid) that name the spec and
// the line or field at fault. A Spec built in Go should go through
// Defaults and Validate before use.
package spec
