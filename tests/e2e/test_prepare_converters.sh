#!/usr/bin/env bash
# `mixvae prepare` on tiny files in the published formats (HAR, RCV1-v2, .npy, CSV): a
# good folder converts; a bad file is one line on stderr naming it, exit code 2, and no
# output file.
source "$(dirname "$0")/common.sh"

# A UCI HAR folder: 561 numbers per line, each right-aligned in 16 characters with a
# 3-digit exponent, as published; labels 1-6.
har_x() {  # ROWS COLUMNS
  awk -v rows="$1" -v cols="$2" 'BEGIN {
    for (r = 0; r < rows; r++) {
      line = ""
      for (c = 0; c < cols; c++) {
        s = sprintf("%.7e", ((r * 561 + c * 37) % 2001 - 1000) / 1000)
        sub(/e\+/, "e+0", s); sub(/e-/, "e-0", s)
        line = line sprintf("%16s", s)
      }
      print line
    }
  }'
}
HAR="$TMP/har/UCI HAR Dataset"
mkdir -p "$HAR/train" "$HAR/test"
har_x 6 561 > "$HAR/train/X_train.txt"
printf '1\n2\n3\n4\n5\n6\n' > "$HAR/train/y_train.txt"
har_x 3 561 > "$HAR/test/X_test.txt"
printf '6\n1\n2\n' > "$HAR/test/y_test.txt"
grep -q "^  [0-9]\.[0-9]\{7\}e[-+][0-9]\{3\}\| -[0-9]\.[0-9]\{7\}e[-+][0-9]\{3\}" "$HAR/train/X_train.txt" \
  && ok "HAR fixture in the published number format" || bad "HAR fixture format"

out="$("$MIXVAE" prepare --dataset har --raw "$TMP/har" --out "$TMP/har.h5")"
[ $? -eq 0 ] && printf '%s' "$out" | grep -q "9 x 561, 6 classes (har)" && ok "prepare har: $out" \
  || bad "prepare har: $out"
# (Output is captured before grep: with pipefail, `grep -q` closing the pipe early could
# fail the producer with SIGPIPE.)
out="$("$MIXVAE" prepare --dataset har --raw "$HAR" --first 8 --out "$TMP/har8.h5")"
printf '%s' "$out" | grep -q "8 x 561" && ok "prepare har --first 8" || bad "prepare har --first 8: $out"
expect_error 2 "first 10 asks for more rows" -- "$MIXVAE" prepare --dataset har --raw "$HAR" --first 10 --out "$TMP/h10.h5"

cp -r "$TMP/har" "$TMP/har_bad"
BAD="$TMP/har_bad/UCI HAR Dataset"
har_x 3 560 > "$BAD/test/X_test.txt"
expect_error 2 "X_test.txt: line 1 has 560 values, expected 561" -- \
  "$MIXVAE" prepare --dataset har --raw "$TMP/har_bad" --out "$TMP/bad1.h5"
har_x 3 561 > "$BAD/test/X_test.txt"
printf '6\n1\n9\n' > "$BAD/test/y_test.txt"
expect_error 2 "y_test.txt: line 3: label '9' is not an activity id 1-6" -- \
  "$MIXVAE" prepare --dataset har --raw "$TMP/har_bad" --out "$TMP/bad2.h5"
rm "$BAD/test/y_test.txt"
expect_error 2 "y_test.txt: missing UCI HAR file" -- \
  "$MIXVAE" prepare --dataset har --raw "$TMP/har_bad" --out "$TMP/bad3.h5"
# On two ranks: rank 0 converts, the same single line, no hang.
expect_error 2 "y_test.txt: missing UCI HAR file" -- timeout 60 "${MPIRUN[@]}" "$MIXVAE" prepare --dataset har \
  --raw "$TMP/har_bad" --out "$TMP/bad4.h5"
ls "$TMP"/bad*.h5 "$TMP"/h10.h5 >/dev/null 2>&1 && bad "output left after a failed prepare" || ok "no output left behind"

# A tiny RCV1-v2 corpus: qrels plus the five token files in .I/.W records.
R="$TMP/rcv1"
mkdir -p "$R"
printf 'CCAT 1 1\nGCAT 2 1\nMCAT 3 1\nECAT 4 1\nCCAT 5 1\nGCAT 5 1\n' > "$R/rcv1-v2.topics.qrels"
printf '.I 1\n.W\napple banana apple\n\n.I 5\n.W\nzzz\n\n' > "$R/lyrl2004_tokens_test_pt0.dat"
printf '.I 2\n.W\nbanana cherry\n\n' > "$R/lyrl2004_tokens_test_pt1.dat"
printf '.I 3\n.W\ncherry cherry\ndate\n\n' > "$R/lyrl2004_tokens_test_pt2.dat"
printf '.I 6\n.W\nother\n\n' > "$R/lyrl2004_tokens_test_pt3.dat"
printf '.I 4\n.W\napple date\n\n' > "$R/lyrl2004_tokens_train.dat"
out="$("$MIXVAE" prepare --dataset reuters --raw "$R" --docs 3 --vocab 3 --out "$TMP/r.h5")"
printf '%s' "$out" | grep -q "3 x 3, 4 classes" && ok "prepare reuters (dec)" || bad "prepare reuters (dec): $out"
out="$("$MIXVAE" prepare --dataset reuters --raw "$R" --subset dec-keras --docs 4 --vocab 2 --out "$TMP/rk.h5")"
printf '%s' "$out" | grep -q "4 x 2, 4 classes" && ok "prepare reuters (dec-keras)" || bad "prepare reuters (dec-keras): $out"
expect_error 2 "unknown --subset 'keras'" -- "$MIXVAE" prepare --dataset reuters --raw "$R" --subset keras --out "$TMP/rx.h5"
printf '.I 4\n.W\napple date\n\n.I 7\n' > "$R/lyrl2004_tokens_train.dat"
expect_error 2 "lyrl2004_tokens_train.dat: line 5: record .I 7 has no .W line" -- \
  "$MIXVAE" prepare --dataset reuters --raw "$R" --docs 3 --out "$TMP/ry.h5"

# User data: CSV with a header and text labels; a malformed row.
printf 'a,b,kind\n1.5,2,cat\n3,4e-1,dog\n' > "$TMP/t.csv"
out="$("$MIXVAE" prepare --dataset csv --input "$TMP/t.csv" --label-column kind --out "$TMP/csv.h5")"
printf '%s' "$out" | grep -q "2 x 2, 2 classes (t)" && ok "prepare csv" || bad "prepare csv: $out"
printf 'a,b,kind\n1.5,2,cat\n3,x,dog\n' > "$TMP/u.csv"
expect_error 2 "u.csv: line 3, column 2 \('b'\): 'x' is not a number" -- \
  "$MIXVAE" prepare --dataset csv --input "$TMP/u.csv" --label-column kind --out "$TMP/u.h5"
expect_error 2 "--label-column 'nope'" -- "$MIXVAE" prepare --dataset csv --input "$TMP/t.csv" --label-column nope --out "$TMP/v.h5"
printf 'garbage' > "$TMP/g.npy"
expect_error 2 "g.npy: not a .npy file" -- "$MIXVAE" prepare --dataset npy --features "$TMP/g.npy" --out "$TMP/g.h5"
expect_error 2 "stl10 needs --backbone" -- "$MIXVAE" prepare --dataset stl10 --out "$TMP/s.h5"
expect_error 2 "unknown --dataset 'cifar'" -- "$MIXVAE" prepare --dataset cifar --out "$TMP/c.h5"
for f in u g s c v rx ry; do [ -e "$TMP/$f.h5" ] && bad "$f.h5 left behind"; done
out="$("$MIXVAE" prepare --help)"
printf '%s' "$out" | grep -q "dec-keras" && ok "prepare --help lists the subsets" || bad "prepare --help"
finish
