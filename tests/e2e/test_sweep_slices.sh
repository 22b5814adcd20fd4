#!/usr/bin/env bash
# The slices of a job array (`mixvae sweep --slice I/N`, hpc/slurm/array.sbatch) run at the
# same time on the same runs_dir: each slice's coordinator knows only its own runs, yet a
# pretrained autoencoder or VaDE stage that runs of several slices need is trained once
# (its lock file, RUNS/pretrained/*.h5.lock; the other slices wait for it and load it).
# Here VaDE, AE+GMM and k-DVAE of one seed, one run per slice, all three started at once:
# all three need the same autoencoder, VaDE and k-DVAE the same VaDE stage.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
"$MIXVAE" prepare --dataset synthetic --n 2000 --d 20 --k 4 --seed 0 --out "$TMP/smoke.h5" >/dev/null \
  && ok "prepare smoke data" || bad "prepare smoke data"
pids=()
for i in 0 1 2; do
  timeout 600 "$MIXVAE" sweep --config configs/sweeps/smoke.ini --sweep.runs_dir="$TMP/r" --datasets.smoke="$TMP/smoke.h5" \
    --sweep.models=vade,aegmm,kdvae --sweep.seeds=0 --overrides.train.epochs=4 --overrides.pretrain.epochs=20 \
    --overrides.train.threads=1 --slice "$i/3" > "$TMP/slice$i.log" 2>&1 &
  pids+=($!)
done
rcs=""
for p in "${pids[@]}"; do wait "$p"; rcs+="$? "; done
[ "$rcs" = "0 0 0 " ] && ok "3 slices side by side finished" || bad "slices exited $rcs: $(tail -2 "$TMP"/slice*.log)"
python3 - "$TMP/r" <<'PY' && ok "each shared artifact trained once, loaded by the other slices" || bad "artifacts: see above"
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
made = {}  # family -> [saved/reused per run]
for m in ("vade", "aegmm", "kdvae"):
    r = json.load(open(root / f"smoke/{m}/seed-0/result.json"))
    for family, how in r["artifacts"].items():
        made.setdefault(family, []).append(how.split(":", 1)[0])
print("artifacts:", made)
assert sorted(made["vade-ae"]) == ["reused", "reused", "saved"], made
assert sorted(made["vade"]) == ["reused", "saved"], made
# The trained epochs in the logs say the same: pretraining ran in one run only, the VaDE
# stage in one of the two that use it.
pretrained = [m for m in ("vade", "aegmm", "kdvae")
              if any(json.loads(l).get("stage") == "pretrain" and "loss" in json.loads(l)
                     for l in open(root / f"smoke/{m}/seed-0/metrics.jsonl"))]
assert len(pretrained) == 1, pretrained
assert sorted(p.name for p in (root / "pretrained").iterdir()) == sorted(
    p.name for p in (root / "pretrained").glob("*.h5")), "lock or temporary files left"
PY
waited=$(grep -h "waiting for the artifact" "$TMP"/r/smoke/*/seed-0/train.log 2>/dev/null | head -1)
if [ -n "$waited" ]; then ok "a run waited inside its slice: ${waited:0:160}"
else ok "no run had to wait inside its slice (the coordinators held them back)"; fi
finish
