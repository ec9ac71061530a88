#!/usr/bin/env bash
# make demo: on a fresh Debian machine, as root, install what is missing,
# build strata, start the daemon on its embedded defaults, put example data
# and print what to try next.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

need=()
for pkg in fuse3 git make gcc; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "demo: missing packages ${need[*]}; run as root or install them" >&2
		exit 1
	fi
	echo "== installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v go >/dev/null; then
	echo "demo: Go 1.26 or newer is needed (https://go.dev/dl/); Debian's golang-go is too old" >&2
	exit 1
fi

echo "== building"
make -s build
S=$PWD/bin/strata
if [ "$(id -u)" -eq 0 ]; then ln -sf "$S" /usr/local/bin/strata; fi

echo "== starting the daemon"
if ! $S status >/dev/null 2>&1; then
	$S up -d
fi
$S status

echo "== putting example data"
if ! $S repo inspect licenses >/dev/null 2>&1; then
	$S repo create licenses -d "the licenses shipped with Debian"
fi
$S put -r licenses@main:/ -f /usr/share/common-licenses -m "Debian's common licenses"
printf 'first line\n' | $S put licenses@main:/NOTES -f - -m "a note"
printf 'second line\n' | $S put licenses@main:/NOTES -f - --append -m "append to the note"

cat <<'MSG'

strata is running with its data in /var/lib/strata, mounted at /pfs. Try:

  ls /pfs
  cat /pfs/licenses@main/NOTES
  ls /pfs/.commits/licenses
  strata ls licenses@main
  strata log licenses@main
  strata diff licenses@main
  strata cat licenses@main^1:/NOTES
  strata branch create licenses@main --head licenses@main^1   # revert the append

Stop the daemon with 'strata down'.
MSG
