#!/usr/bin/env bash
# compare.sh OLD_BINARY NEW_BINARY     run run_cases.sh with both and compare the outputs
# compare.sh --against DIR NEW_BINARY  compare a saved run_cases.sh OUTDIR with NEW_BINARY's
#
# Every file of every case must be byte-identical: *.safetensors with cmp, every other file
# (out.txt, rc, metrics .jsonl, summary.json) with diff after masking the timing fields, and
# only those -- they are wall-clock measurements, different on every run:
#   - stdout, `train` epoch lines  "epoch E/N ... time 0.021s samples/s 95631"
#                                  -> "time <masked>s samples/s <masked>"
#   - stdout, `sweep` epoch lines  "sweep epoch E/N ... running R/M time 0.074s"
#                                  -> "time <masked>s"
#   - metrics JSON lines (train and sweep): "epoch_time_s":<number>, "samples_per_s":<number>
#                                  -> "epoch_time_s":<masked>, "samples_per_s":<masked>
# Nothing else is masked (summary.json holds no timings). Entries of OUTDIR whose names start
# with "_" (the data link, _info.txt with the binary's version) are not compared.
# Prints one line per case, `same` or what differs (with the first lines of a diff), then
# "N passed, N failed"; exits 1 on any difference. The temporary OUTDIRs are removed when
# everything matches and kept (paths printed) otherwise, or always with GOLDEN_KEEP=1.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
    echo "usage: $0 OLD_BINARY NEW_BINARY" >&2
    echo "       $0 --against SAVED_OUTDIR NEW_BINARY" >&2
    exit 2
}
[ $# -eq 2 ] || [ $# -eq 3 ] || usage

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mlptrain-golden.XXXXXX")
if [ "$1" = --against ]; then
    [ $# -eq 3 ] || usage
    OLD=$(realpath -e "$2") || exit 2
    [ -d "$OLD" ] || { echo "$0: $2 is not a folder" >&2; exit 2; }
    NEW_BIN=$3
    echo "old: saved outputs in $OLD"
else
    [ $# -eq 2 ] || usage
    OLD=$TMP/old
    echo "old: running $1 into $OLD"
    "$HERE/run_cases.sh" "$1" "$OLD" >"$TMP/old.log" 2>&1 ||
        { cat "$TMP/old.log" >&2; echo "$0: run_cases.sh failed for $1" >&2; exit 2; }
    NEW_BIN=$2
fi
NEW=$TMP/new
echo "new: running $NEW_BIN into $NEW"
"$HERE/run_cases.sh" "$NEW_BIN" "$NEW" >"$TMP/new.log" 2>&1 ||
    { cat "$TMP/new.log" >&2; echo "$0: run_cases.sh failed for $NEW_BIN" >&2; exit 2; }

# The timing fields listed above, and nothing else.
mask() {
    sed -E \
        -e 's#^(epoch [0-9]+/[0-9]+ .* )time [^ ]+s samples/s [^ ]+$#\1time <masked>s samples/s <masked>#' \
        -e 's#^(sweep epoch [0-9]+/[0-9]+ .* )time [^ ]+s$#\1time <masked>s#' \
        -e 's#"epoch_time_s": ?[^,}]+#"epoch_time_s":<masked>#g' \
        -e 's#"samples_per_s": ?[^,}]+#"samples_per_s":<masked>#g' \
        "$1"
}

# compare_case CASE: prints nothing when the case is the same, else one line per difference.
compare_case() {
    local c=$1 f
    { (cd "$OLD/$c" && find . -type f -o -type l) ; (cd "$NEW/$c" && find . -type f -o -type l) ; } |
        sed 's#^\./##' | LC_ALL=C sort -u | while IFS= read -r f; do
        if [ ! -e "$OLD/$c/$f" ]; then
            echo "only in new: $f"
        elif [ ! -e "$NEW/$c/$f" ]; then
            echo "only in old: $f"
        elif [[ $f == *.safetensors ]]; then
            cmp -s "$OLD/$c/$f" "$NEW/$c/$f" || echo "differs: $f ($(cmp "$OLD/$c/$f" "$NEW/$c/$f" 2>&1 | sed 's#.*differ: ##'))"
        elif ! diff -q <(mask "$OLD/$c/$f") <(mask "$NEW/$c/$f") >/dev/null; then
            echo "differs: $f"
            diff -u --label "old/$c/$f" --label "new/$c/$f" <(mask "$OLD/$c/$f") <(mask "$NEW/$c/$f") |
                head -n 20 | sed 's/^/      /'
        fi
    done
}

pass=0
fail=0
cases=$({ ls -1 "$OLD"; ls -1 "$NEW"; } | grep -v '^_' | LC_ALL=C sort -u)
for c in $cases; do
    if [ ! -d "$OLD/$c" ]; then
        printf '%-28s only in new\n' "$c"; fail=$((fail + 1)); continue
    elif [ ! -d "$NEW/$c" ]; then
        printf '%-28s only in old\n' "$c"; fail=$((fail + 1)); continue
    fi
    d=$(compare_case "$c")
    if [ -z "$d" ]; then
        printf '%-28s same\n' "$c"; pass=$((pass + 1))
    else
        printf '%-28s DIFFERS\n' "$c"; printf '%s\n' "$d" | sed 's/^/    /'; fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
if [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ] && [ -z "${GOLDEN_KEEP:-}" ]; then
    rm -rf "$TMP"
else
    echo "outputs kept in $TMP"
fi
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
