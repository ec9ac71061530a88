package mount

// PoisonDone makes every read answered from a chunk reply with a copy
// that the reply's Done overwrites, until the test ends.
func PoisonDone(t interface{ Cleanup(func()) }) {
	poisonDone.Store(true)
	t.Cleanup(func() { poisonDone.Store(false) })
}

// AheadStats returns how many chunks s fetched ahead of their files'
// reads, and how many of those the files' readers took.
func AheadStats(s *Server) (fetched, hits int64) {
	return s.ahead.fetched.Load(), s.ahead.hits.Load()
}
