//go:build !linux

package chunk

func readDirect(string, *lease) ([]byte, error) { return nil, errNoDirect }
