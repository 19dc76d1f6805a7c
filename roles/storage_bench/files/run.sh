#!/bin/sh
# The storage benchmark's container: refuse a volume holding data unless allowed, run fio on its
# job file, and remove the test files whatever happens (only them: never anything else).
# Environment (the Job sets each): STORAGE_BENCH_VOLUMES (the directory holding one mount per
# volume), STORAGE_BENCH_TEST_FILE (the test file's name in each), STORAGE_BENCH_JOB_FILE (fio's job
# file), STORAGE_BENCH_ALLOW_DATA, STORAGE_BENCH_FIO_INSTALL (run when the image has no fio).
set -u
trap 'for dir in "$STORAGE_BENCH_VOLUMES"/*; do rm -f "$dir/$STORAGE_BENCH_TEST_FILE"; done' EXIT
for dir in "$STORAGE_BENCH_VOLUMES"/*; do
  held=$(ls -A "$dir" | grep -v -x -e lost+found -e "$STORAGE_BENCH_TEST_FILE" | head -n 3 | tr '\n' ' ')
  if [ -n "$held" ] && [ "$STORAGE_BENCH_ALLOW_DATA" != true ]; then
    echo "storage-bench: refused: $dir holds data (${held}...): set storage_bench_allow_data: true to benchmark it beside that data"
    exit 3
  fi
done
if ! command -v fio >/dev/null; then
  sh -c "$STORAGE_BENCH_FIO_INSTALL" >&2 || { echo "storage-bench: fio is not in the image and installing it failed"; exit 4; }
fi
fio --output-format=json "$STORAGE_BENCH_JOB_FILE"
