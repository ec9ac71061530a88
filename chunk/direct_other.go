//go:build !linux

package chunk

func readDirect(string) ([]byte, error) { return nil, errNoDirect }
