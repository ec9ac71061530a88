package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// identity is a resolved Request.User.
type identity struct {
	cred *syscall.Credential
	home string // from /etc/passwd, "" when unknown
}

// resolveUser turns "uid", "uid:gid", "name" or "name:group" into
// credentials, reading passwd and group under etc (the container's /etc).
// Like Docker: a numeric uid without a passwd entry gets gid 0; a user
// without an explicit group gets its passwd group plus the supplementary
// groups that list it in the group file.
func resolveUser(etc, spec string) (identity, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return identity{}, fmt.Errorf("invalid user %q", spec)
	}
	users, err := readColonFile(filepath.Join(etc, "passwd"), 7)
	if err != nil {
		return identity{}, err
	}
	var (
		id   identity
		name string
		uid  uint64
		gid  uint64
	)
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		uid = n
		for _, u := range users {
			if u[2] == userPart {
				name, id.home = u[0], u[5]
				gid, _ = strconv.ParseUint(u[3], 10, 32)
				break
			}
		}
	} else {
		found := false
		for _, u := range users {
			if u[0] == userPart {
				found, name, id.home = true, u[0], u[5]
				if uid, err = strconv.ParseUint(u[2], 10, 32); err != nil {
					return identity{}, fmt.Errorf("user %q: bad uid %q in passwd", userPart, u[2])
				}
				gid, _ = strconv.ParseUint(u[3], 10, 32)
				break
			}
		}
		if !found {
			return identity{}, fmt.Errorf("user %q not found in %s", userPart, filepath.Join(etc, "passwd"))
		}
	}
	groups, err := readColonFile(filepath.Join(etc, "group"), 4)
	if err != nil {
		return identity{}, err
	}
	var extra []uint32
	if hasGroup {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			gid = n
		} else {
			found := false
			for _, g := range groups {
				if g[0] == groupPart {
					if gid, err = strconv.ParseUint(g[2], 10, 32); err != nil {
						return identity{}, fmt.Errorf("group %q: bad gid %q in group file", groupPart, g[2])
					}
					found = true
					break
				}
			}
			if !found {
				return identity{}, fmt.Errorf("group %q not found in %s", groupPart, filepath.Join(etc, "group"))
			}
		}
	} else if name != "" {
		for _, g := range groups {
			for _, m := range strings.Split(g[3], ",") {
				if m == name {
					if n, err := strconv.ParseUint(g[2], 10, 32); err == nil && n != gid {
						extra = append(extra, uint32(n))
					}
					break
				}
			}
		}
	}
	// A non-nil, possibly empty Groups makes the child call setgroups, so
	// that it does not keep the agent's (root's) supplementary groups.
	id.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: append([]uint32{}, extra...)}
	return id, nil
}

// readColonFile parses an /etc/passwd-style file into records of at least
// fields fields. A missing file is an empty one.
func readColonFile(path string, fields int) ([][]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		rec := strings.Split(line, ":")
		for len(rec) < fields {
			rec = append(rec, "")
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return recs, nil
}
