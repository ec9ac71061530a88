package chunk

import (
	"context"
	"io/fs"
	"sync"
	"time"
)

// Mem is a Backend in memory, for tests. Its Puts are durable at once.
type Mem struct {
	mu    sync.RWMutex
	blobs map[ID]memBlob
}

type memBlob struct {
	data []byte
	mod  time.Time
}

var (
	_ Backend = (*Mem)(nil)
	_ Toucher = (*Mem)(nil)
	_ Local   = (*Mem)(nil)
)

// Local reports true: a Mem is in this process.
func (m *Mem) Local() bool { return true }

// NewMem returns an empty Mem.
func NewMem() *Mem { return &Mem{blobs: make(map[ID]memBlob)} }

func notExist(op string, id ID) error {
	return &fs.PathError{Op: op, Path: id.String(), Err: fs.ErrNotExist}
}

func (m *Mem) Put(ctx context.Context, id ID, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := memBlob{data: append([]byte(nil), data...), mod: time.Now()}
	m.mu.Lock()
	m.blobs[id] = b
	m.mu.Unlock()
	return nil
}

func (m *Mem) Get(ctx context.Context, id ID) ([]byte, error) {
	m.mu.RLock()
	b, ok := m.blobs[id]
	m.mu.RUnlock()
	if !ok {
		return nil, notExist("get", id)
	}
	return append([]byte(nil), b.data...), nil
}

func (m *Mem) Stat(ctx context.Context, id ID) (Info, error) {
	m.mu.RLock()
	b, ok := m.blobs[id]
	m.mu.RUnlock()
	if !ok {
		return Info{}, notExist("stat", id)
	}
	return Info{Size: int64(len(b.data)), ModTime: b.mod}, nil
}

func (m *Mem) Touch(ctx context.Context, id ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[id]
	if !ok {
		return notExist("touch", id)
	}
	b.mod = time.Now()
	m.blobs[id] = b
	return nil
}

// SetModTime sets the ModTime of a stored blob, so tests can age it.
func (m *Mem) SetModTime(id ID, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[id]
	if !ok {
		return notExist("touch", id)
	}
	b.mod = t
	m.blobs[id] = b
	return nil
}

func (m *Mem) Delete(ctx context.Context, id ID) error {
	m.mu.Lock()
	delete(m.blobs, id)
	m.mu.Unlock()
	return nil
}

// List walks a snapshot, so fn may call any method of m.
func (m *Mem) List(ctx context.Context, fn func(ID, Info) error) error {
	type entry struct {
		id   ID
		info Info
	}
	m.mu.RLock()
	all := make([]entry, 0, len(m.blobs))
	for id, b := range m.blobs {
		all = append(all, entry{id, Info{Size: int64(len(b.data)), ModTime: b.mod}})
	}
	m.mu.RUnlock()
	for _, e := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.id, e.info); err != nil {
			return err
		}
	}
	return nil
}
