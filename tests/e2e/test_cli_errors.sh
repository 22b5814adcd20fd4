#!/usr/bin/env bash
# Bad input is one line on stderr and exit code 2, on one rank and on two, and leaves no
# output file behind.
source "$(dirname "$0")/common.sh"

# Output captured first: `grep -q` stops reading early, which under pipefail would turn the
# writer's broken pipe into a failure.
help_out="$("$MIXVAE" --help)"; grep -q "usage: mixvae" <<<"$help_out" && ok "--help" || bad "--help"
help_out="$("$MIXVAE" train --help)"; grep -q "train.batch_size" <<<"$help_out" && ok "train --help lists keys" || bad "train --help"
expect_error 2 "unknown command 'trian'" -- "$MIXVAE" trian
expect_error 2 "unknown option --bogus" -- "$MIXVAE" prepare --dataset mnist --bogus 1 --out "$TMP/x.h5"
expect_error 2 "none: no such directory" -- "$MIXVAE" prepare --dataset mnist --raw "$TMP/none" --out "$TMP/x.h5"
[ ! -e "$TMP/x.h5" ] && ok "no output after failed prepare" || bad "x.h5 left behind"
# --out in a folder that does not exist yet: made; removed again when the conversion fails.
expect_error 2 "none: no such directory" -- "$MIXVAE" prepare --dataset mnist --raw "$TMP/none" --out "$TMP/new/sub/x.h5"
[ ! -e "$TMP/new" ] && ok "no folder left after failed prepare" || bad "prepare left $TMP/new behind"
"$MIXVAE" prepare --dataset synthetic --n 50 --d 4 --k 2 --out "$TMP/new/sub/s.h5" >/dev/null \
  && [ -f "$TMP/new/sub/s.h5" ] && ok "prepare makes --out's folder" || bad "prepare into a new folder failed"

# Corrupt IDX files: wrong magic, truncated payload, label count mismatch.
mkdir -p "$TMP/raw"
python3 - "$TMP/raw" <<'PY'
import gzip, struct, sys, os
d = sys.argv[1]
def idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", x) for x in dims) + payload)
idx(f"{d}/train-images-idx3-ubyte.gz", 2051, [3, 28, 28], bytes(3 * 784))
idx(f"{d}/train-labels-idx1-ubyte.gz", 2049, [3], bytes([1, 2, 3]))
idx(f"{d}/t10k-images-idx3-ubyte.gz", 2051, [2, 28, 28], bytes(2 * 784))
idx(f"{d}/t10k-labels-idx1-ubyte.gz", 2049, [2], bytes([4, 5]))
PY
"$MIXVAE" prepare --dataset mnist --raw "$TMP/raw" --out "$TMP/ok.h5" >/dev/null && ok "prepare tiny IDX" || bad "prepare tiny IDX"
cp -r "$TMP/raw" "$TMP/magic"
python3 -c "
import gzip; p='$TMP/magic/train-images-idx3-ubyte.gz'; b=bytearray(gzip.open(p).read()); b[2]=0x0D; gzip.open(p,'wb').write(bytes(b))"
expect_error 2 "train-images.*(magic|type|rank)" -- "$MIXVAE" prepare --dataset mnist --raw "$TMP/magic" --out "$TMP/m.h5"
cp -r "$TMP/raw" "$TMP/trunc"
python3 -c "
import gzip; p='$TMP/trunc/t10k-images-idx3-ubyte.gz'; b=gzip.open(p).read(); gzip.open(p,'wb').write(b[:-100])"
expect_error 2 "t10k-images.*truncated" -- "$MIXVAE" prepare --dataset mnist --raw "$TMP/trunc" --out "$TMP/t.h5"
cp -r "$TMP/raw" "$TMP/count"
python3 -c "
import gzip,struct; p='$TMP/count/train-labels-idx1-ubyte.gz'; gzip.open(p,'wb').write(struct.pack('>II',2049,2)+bytes([1,2]))"
expect_error 2 "3 images but .*2 labels" -- "$MIXVAE" prepare --dataset mnist --raw "$TMP/count" --out "$TMP/c.h5"
ls "$TMP"/*.h5 2>/dev/null | grep -vq "ok.h5" && bad "half-written .h5 left" || ok "no half-written files"

# Data files that are not what train expects.
echo "not hdf5" > "$TMP/junk.h5"
expect_error 2 "junk.h5.*not an HDF5 file" -- "$MIXVAE" train --data.path="$TMP/junk.h5" --output.dir="$TMP/r"
expect_error 2 "nope.h5" -- "$MIXVAE" train --data.path="$TMP/nope.h5" --output.dir="$TMP/r"
"$MIXVAE" prepare --dataset synthetic --n 200 --d 16 --k 3 --out "$TMP/syn.h5" >/dev/null
expect_error 2 "train.lr" -- "$MIXVAE" train --data.path="$TMP/syn.h5" --train.lr=abc
expect_error 2 "train.epochs must be >= 0, got -3 \(given as --train.epochs=-3\)" -- "$MIXVAE" train --data.path="$TMP/syn.h5" --train.epochs=-3
# A bad value from a flag is reported as the flag's, not the config file's.
printf '[train]\nepochs = 2\n' > "$TMP/ok.ini"
expect_error 2 "ok.ini: train.epochs must be >= 0, got -1 \(given as --train.epochs=-1\)" -- "$MIXVAE" train --config "$TMP/ok.ini" \
  --data.path="$TMP/syn.h5" --train.epochs=-1
expect_error 2 "command line: kdvae.epochs must be an integer, got 'abc'" -- "$MIXVAE" train --config "$TMP/ok.ini" \
  --data.path="$TMP/syn.h5" --model.name=kdvae --kdvae.epochs=abc
expect_error 2 "model.clusters must be >= 2" -- "$MIXVAE" train --data.path="$TMP/syn.h5" --model.clusters=1
expect_error 2 "unknown option --train.epoch\b.*valid keys of \[train\]" -- "$MIXVAE" train --data.path="$TMP/syn.h5" --train.epoch=3
expect_error 2 "cannot open config file" -- "$MIXVAE" train --config "$TMP/missing.ini"
expect_error 2 "no checkpoint" -- "$MIXVAE" train --data.path="$TMP/syn.h5" --output.dir="$TMP/fresh" --resume
expect_error 2 "no checkpoint at .*fresh2/ensemble/checkpoint.h5" -- "$MIXVAE" train --data.path="$TMP/syn.h5" \
  --output.dir="$TMP/fresh2" --seeds 0-1 --resume
# A refused --resume (a mistyped folder, say) creates nothing.
[ ! -e "$TMP/fresh" ] && [ ! -e "$TMP/fresh2" ] && ok "--resume without a checkpoint leaves no folder" \
  || bad "--resume without a checkpoint created $(find "$TMP/fresh" "$TMP/fresh2" 2>/dev/null | tr '\n' ' ')"
# --resume with another value of a key that changes training: one line naming it, on one
# rank and on two; another train.threads is the same run.
tiny=(--data.path="$TMP/syn.h5" --output.dir="$TMP/tiny" --model.hidden=8 --pretrain.epochs=1 --train.epochs=1
      --output.progress=false)
"$MIXVAE" train "${tiny[@]}" > "$TMP/tiny.log" 2>&1 && ok "a tiny run to resume" || bad "tiny run: $(tail -2 "$TMP/tiny.log")"
expect_error 2 "tiny/checkpoint.h5: the checkpoint was trained with other values of key\(s\) that change training: train.lr \(0.002 -> 0.001\)" \
  -- "$MIXVAE" train "${tiny[@]}" --train.lr=0.001 --resume
expect_error 2 "model.clusters \(10 -> 3\); train.lr \(0.002 -> 0.001\)" -- timeout 120 "${MPIRUN[@]}" "$MIXVAE" train "${tiny[@]}" \
  --train.lr=0.001 --model.clusters=3 --resume
"$MIXVAE" train "${tiny[@]}" --train.threads=1 --resume > "$TMP/tiny2.log" 2>&1 && ok "--resume with another train.threads" \
  || bad "--resume with another train.threads: $(tail -2 "$TMP/tiny2.log")"
touch "$TMP/afile"
expect_error 2 "afile/sub.*cannot be created" -- "$MIXVAE" train --data.path="$TMP/syn.h5" --output.dir="$TMP/afile/sub" --pretrain.epochs=0 --train.epochs=0
expect_error 2 "junk.h5: not an HDF5 file" -- "$MIXVAE" eval --checkpoint "$TMP/junk.h5"

# On two ranks: the same single line, exit 2, no hang.
expect_error 2 "junk.h5.*not an HDF5 file" -- timeout 60 "${MPIRUN[@]}" "$MIXVAE" train --data.path="$TMP/junk.h5" --output.dir="$TMP/r2"
expect_error 2 "train.lr" -- timeout 60 "${MPIRUN[@]}" "$MIXVAE" train --data.path="$TMP/syn.h5" --train.lr=abc
"$MIXVAE" prepare --dataset synthetic --n 1 --d 4 --k 2 --out "$TMP/one.h5" >/dev/null 2>&1
expect_error 2 "k.*2|n.*k" -- "$MIXVAE" prepare --dataset synthetic --n 1 --d 4 --k 2 --out "$TMP/one.h5"
finish
