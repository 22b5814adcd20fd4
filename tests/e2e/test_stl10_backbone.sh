#!/usr/bin/env bash
# The reference STL-10 extractor (launch/stl10_backbone.py) end to end: the script writes a
# TorchScript ResNet-50 (seeded random weights: no download here), `mixvae prepare
# --dataset stl10` runs it on images written in the release's binary format, and its
# features must equal torchvision's own forward pass on the same images, preprocessed
# independently in NumPy (the release's column-major layout, /255, ImageNet mean/std).
# Needs Python with torchvision (Debian: python3-torchvision); exits 77 (skipped) without.
source "$(dirname "$0")/common.sh"

PY=""
for p in python3 /usr/bin/python3; do
  if "$p" -c "import torch, torchvision, numpy" 2>/dev/null; then PY="$p"; break; fi
done
if [ -z "$PY" ]; then
  echo "skipped: no python3 with torch, torchvision and numpy (apt-get install python3-torchvision)"
  exit 77
fi

"$PY" "$ROOT/launch/stl10_backbone.py" --weights random --seed 5 --out "$TMP/r50.pt" > "$TMP/script.log" 2>&1 \
  && grep -q "^wrote " "$TMP/script.log" && ok "stl10_backbone.py writes a TorchScript ResNet-50" \
  || bad "stl10_backbone.py: $(tail -3 "$TMP/script.log")"

# 3 train and 2 test images, uint8 3x96x96, each channel stored column-major; labels 1-10.
mkdir -p "$TMP/stl"
"$PY" - "$TMP/stl" <<'PY'
import numpy as np, sys
d = sys.argv[1]
rng = np.random.default_rng(11)
for split, n, y in (("train", 3, [1, 10, 4]), ("test", 2, [7, 2])):
    img = rng.integers(0, 256, size=(n, 3, 96, 96), dtype=np.uint8)  # channel, row, column
    img.transpose(0, 1, 3, 2).tofile(f"{d}/{split}_X.bin")           # the release: column-major
    np.save(f"{d}/{split}_img.npy", img)
    np.array(y, dtype=np.uint8).tofile(f"{d}/{split}_y.bin")
PY
"$MIXVAE" prepare --dataset stl10 --raw "$TMP/stl" --backbone "$TMP/r50.pt" --batch-size 2 --out "$TMP/stl.h5" \
  --backbone-info "resnet50 test" --weights-info "random seed 5" > "$TMP/prep.log" 2>&1 \
  && ok "prepare --dataset stl10 --backbone (the script's module)" || bad "prepare stl10: $(tail -3 "$TMP/prep.log")"
h5dump -d /features -b LE -o "$TMP/features.bin" "$TMP/stl.h5" >/dev/null \
  && h5dump -d /labels -b LE -o "$TMP/labels.bin" "$TMP/stl.h5" >/dev/null \
  && h5dump -H "$TMP/stl.h5" | grep -A2 'DATASET "features"' | grep -q '( 5, 2048 )' \
  && ok "5 x 2048 features" || bad "features: $(h5dump -H "$TMP/stl.h5" 2>&1 | head -20)"
"$PY" - "$TMP" <<'PY' && ok "features equal torchvision's forward pass; labels 0-9" || bad "features differ from torchvision"
import numpy as np, sys, torch, torchvision
d = sys.argv[1]
got = np.fromfile(f"{d}/features.bin", dtype="<f4").reshape(5, 2048)
labels = np.fromfile(f"{d}/labels.bin", dtype="<i8")
assert labels.tolist() == [0, 9, 3, 6, 1], labels
img = np.concatenate([np.load(f"{d}/stl/train_img.npy"), np.load(f"{d}/stl/test_img.npy")])
x = img.astype(np.float32) / 255
mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
x = (x - mean) / std
torch.manual_seed(5)  # the script's --seed 5 gives the same weights
m = torchvision.models.resnet50(weights=None)
m.fc = torch.nn.Identity()
m.eval()
with torch.no_grad():
    want = m(torch.from_numpy(np.ascontiguousarray(x))).numpy()
err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-12)
print("max relative difference", err)
assert err < 1e-4, err
# A transposed image (the release read row-major) would give other features.
with torch.no_grad():
    wrong = m(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 3, 2)))).numpy()
assert np.abs(got - wrong).max() / np.abs(want).max() > 1e-3
PY
grep -q "resnet50 test" <(h5dump -a /backbone "$TMP/stl.h5") && ok "backbone attribute recorded" || bad "backbone attribute"

expect_error 2 "no such file" -- "$PY" "$ROOT/launch/stl10_backbone.py" --weights "$TMP/none.pth" --out "$TMP/x.pt"
echo "not a state dict" > "$TMP/bad.pth"
expect_error 2 "not a torchvision ResNet-50 state dict" -- "$PY" "$ROOT/launch/stl10_backbone.py" --weights "$TMP/bad.pth" --out "$TMP/x.pt"
expect_error 2 "no such folder" -- "$PY" "$ROOT/launch/stl10_backbone.py" --weights random --out "$TMP/none/x.pt"
finish
