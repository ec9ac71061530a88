// Package meta keeps strata's metadata in one Pebble database: repos,
// branches, commits and the file tree of every commit.
//
// # Nouns
//
// A repo is a named, versioned tree of files. A commit is a snapshot of that
// tree: it has a parent (the commit it was started from), a message, an
// origin (a user or a pipeline), times, and provenance (the input commits it
// was computed from). A commit is open while it is being written and is then
// finished (or, for a pipeline's output, failed); a finished commit never
// changes. A branch is a movable name for a commit; moving it to an older
// commit is a revert.
//
// # Trees
//
// A commit's tree is a Merkle tree of directories. A directory is a hash
// array mapped trie (HAMT) of entries keyed by name: small directories are
// one leaf node; once a directory has more than maxLeaf entries its node
// splits into 16 children by the next four bits of the SHA-256 of each name.
// The shape depends only on the set of entries, so equal directories have
// equal hashes and are stored once. A file entry holds the chunk refs of its
// content (inline, or in a separate chunk-list node for large files); a
// directory entry holds the hash of its child directory and the total size
// and file count below it. Nodes are content addressed and immutable.
//
// These choices give the costs the store promises: changing one file in a
// repo of n files writes O(depth + log n) new nodes, diffing two commits
// skips every subtree whose hash is equal so it costs O(changes), and
// listing a directory reads only that directory's nodes.
//
// # Atomicity
//
// Every change that spans keys (a commit with its tree nodes, a branch move,
// a repo delete) is one Pebble batch committed with Sync. A crash leaves the
// old state or the new one, never a mix. Writers are serialized by one
// mutex; readers never block.
package meta
