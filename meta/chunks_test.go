package meta

import (
	"testing"

	"github.com/strata-data/strata/chunk"
	"github.com/strata-data/strata/chunk/backendtest"
)

func TestChunkBackend(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) chunk.Backend { return openTest(t).Chunks() })
}
