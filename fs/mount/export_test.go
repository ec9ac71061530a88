package mount

// PoisonDone makes every read answered from a chunk reply with a copy
// that the reply's Done overwrites, until the test ends.
func PoisonDone(t interface{ Cleanup(func()) }) {
	poisonDone.Store(true)
	t.Cleanup(func() { poisonDone.Store(false) })
}
