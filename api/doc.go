// Package api is strata's one front door: an HTTP/JSON API served by the
// daemon on a unix socket (and optionally on TCP with a bearer token), and
// the Go client every other process (the CLI, remote mounts, workers) uses.
//
// Errors travel as {"error": "...", "code": "..."} with a matching HTTP
// status; the client turns the code back into the io/fs or meta sentinel,
// so callers test errors with errors.Is on both sides of the wire.
// docs/api.md lists every route.
package api
