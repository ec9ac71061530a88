#!/usr/bin/env bash
# make demo: on a fresh Debian machine, as root, install what is missing,
# build strata, start the daemon on its defaults (data in /var/lib/strata,
# /pfs mounted) and run the Fashion-MNIST example
# (contrib/examples/fashion-mnist): three input repos, four pipelines,
# a model trained and scored. Ends with the accuracy, where to look in /pfs
# and what to try next; docs/tutorial.md walks through it.
#
# Idempotent: a second run reuses the daemon, the repos, the pipelines and
# their data, and prints the same summary.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
# The demo is about the daemon on the default data directory.
unset STRATA_ADDR STRATA_TOKEN
EXAMPLE=contrib/examples/fashion-mnist

# Wall time of each stage, printed at the end.
stages=()
t0=$(date +%s%N)
stage_done() {
	local now t
	now=$(date +%s%N)
	t=$(((now - t0) / 1000000))
	stages+=("$(printf '  %-10s %4d.%01d s' "$1" $((t / 1000)) $((t % 1000 / 100)))")
	t0=$now
}
all0=$t0

echo "== packages"
need=()
for pkg in fuse3 git make gcc containerd runc busybox-static dataset-fashion-mnist; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "demo: missing packages ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
	echo "all there"
fi
if ! command -v go >/dev/null; then
	echo "demo: Go 1.26 or newer is needed (https://go.dev/dl/); Debian's golang-go is too old" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: pipelines run containers, which needs root; run 'make demo' as root" >&2
	exit 1
fi
stage_done packages

echo "== building"
make -s build
S=$PWD/bin/strata
ln -sf "$S" /usr/local/bin/strata
stage_done build

echo "== daemon"
if $S status >/dev/null 2>&1; then
	echo "a daemon is running at /var/lib/strata already"
else
	$S up -d
fi
if ! [[ $($S status) =~ mount[[:space:]]+/pfs ]]; then
	echo "demo: the daemon at /var/lib/strata does not show /pfs; restart it with 'strata down && strata up -d'" >&2
fi
stage_done daemon

echo "== the Fashion-MNIST example"
make -s --no-print-directory -C "$EXAMPLE" run STRATA="$S"
stage_done example

field() { sed -n "s/^  \"$1\": \([^,]*\),*$/\1/p" | tr -d '"'; }
m=$($S cat evaluate@main:/metrics.json)
p=$($S cat train@main:/params.json)
total=$((($(date +%s%N) - all0) / 1000000))

cat <<MSG

== done in $((total / 1000)).$((total % 1000 / 100)) s
$(printf '%s\n' "${stages[@]}")

Test accuracy $(field accuracy <<<"$m") on $(field examples <<<"$m") images, model trained on $(field examples <<<"$p") examples
(evaluate@main:/metrics.json).

strata runs with its data in /var/lib/strata; every version is under /pfs:

  ls /pfs                                   repos and their branches
  ls /pfs/infer@main                        predictions, one file per image batch
  head /pfs/infer@main/batch-00.csv
  cat /pfs/evaluate@main/metrics.json       accuracy and confusion matrix
  ls -t /pfs/.commits/train                 every model, newest first
  strata job list                           the jobs that ran

Three things to try (docs/tutorial.md explains them):

  # a new batch of images: infer runs one datum and reuses the other nine
  make -C $EXAMPLE more-images
  # where a prediction came from: job, datum, image batch, model, training shards
  strata lineage infer@main:/batch-03.csv
  # a 6th training shard retrains everything; moving the branch back reverts
  # it, reusing every output made from the 5 shards before
  make -C $EXAMPLE more-data
  strata branch create training@main --head training@main^1 && strata wait training@main

Stop the daemon with 'strata down'.
MSG
