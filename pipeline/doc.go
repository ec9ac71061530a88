// Package pipeline is the pipeline daemon: it keeps pipelines, watches
// their input branches, turns each new set of input heads into a job with
// an open output commit, splits the job into datums, runs the datums that
// are new or changed in long-lived worker containers, and finishes the
// output commit with every datum's output and provenance to every input.
//
// Records (pipelines, jobs, datums, the index of successful datum hashes)
// live in the metadata database next to the commits, and every state
// change that must agree with a commit is one atomic batch with it.
//
// Containers are reached through Executor (pipeline/runtime for
// containerd); each worker sees its datum through a tree mount (Mounter,
// served by fs/mount), so switching datums is a metadata change.
package pipeline
