#!/usr/bin/env python3
"""Writes the reference STL-10 feature extractor as a TorchScript file for
`mixvae prepare --dataset stl10 --backbone FILE.pt` (docs/data.md).

The VaDE and k-DVAE papers cluster STL-10 through ImageNet ResNet-50 features, average
pooled to 2,048 dimensions. This script builds torchvision's ResNet-50, drops the
classifier (fc = Identity, so the output is the average pool), puts it in eval mode and
saves it with torch.jit.script. mixvae does the rest in C++: it reads the binary images,
scales them to [0, 1], normalises with the ImageNet mean and std, resizes when asked
(--image-size), runs this module and records its sha256 and the recipe in the HDF5 file.

Kept outside the core on purpose: it needs Python, torchvision and (for the real
weights) a download or a weights file, none of which the C++ build depends on.

  python3 launch/stl10_backbone.py --weights imagenet --out resnet50.pt       # downloads IMAGENET1K_V1
  python3 launch/stl10_backbone.py --weights resnet50-0676ba61.pth --out resnet50.pt
  build/mixvae prepare --dataset stl10 --raw DIR --backbone resnet50.pt --out data/stl10.h5 \\
      --backbone-info "..." --weights-info "..."        # the script prints both

Save the module with the PyTorch version that matches mixvae's LibTorch (Debian 12:
python3-torch and python3-torchvision from the same release as libtorch-dev): a module
saved by a newer PyTorch may not load in an older LibTorch.
"""
import argparse
import hashlib
import os
import sys


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fail(msg):
    print(f"stl10_backbone.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="TorchScript file to write (e.g. resnet50.pt)")
    p.add_argument("--weights", required=True,
                   help="'imagenet' (torchvision IMAGENET1K_V1, downloaded), a torchvision ResNet-50 "
                        "state-dict file (.pth), or 'random' (untrained, seeded: for tests only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the 'random' weights (default 0)")
    a = p.parse_args()

    try:
        import torch
        import torchvision
    except ImportError as e:
        fail(f"{e.name} is not installed (Debian: apt-get install python3-torchvision)")

    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        fail(f"--out {a.out}: no such folder {out_dir}")

    if a.weights == "random":
        torch.manual_seed(a.seed)
        model = torchvision.models.resnet50(weights=None)
        weights_info = f"random (torch.manual_seed({a.seed}), untrained: not for results)"
    elif a.weights == "imagenet":
        w = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
        try:
            model = torchvision.models.resnet50(weights=w)
        except Exception as e:  # no network, a proxy, a damaged cache
            fail(f"cannot download the ImageNet weights ({type(e).__name__}: {e}); "
                 "download them elsewhere and pass the .pth file")
        weights_info = f"torchvision ResNet50_Weights.IMAGENET1K_V1 ({w.url})"
    else:
        if not os.path.isfile(a.weights):
            fail(f"--weights {a.weights}: no such file (or give 'imagenet' or 'random')")
        try:
            state = torch.load(a.weights, map_location="cpu")
            model = torchvision.models.resnet50(weights=None)
            model.load_state_dict(state)
        except Exception as e:
            fail(f"--weights {a.weights}: not a torchvision ResNet-50 state dict ({type(e).__name__}: "
                 f"{str(e).splitlines()[0] if str(e) else ''})")
        weights_info = f"{os.path.basename(a.weights)} sha256 {sha256(a.weights)}"

    model.fc = torch.nn.Identity()  # the 2,048-d average pool is the output
    model.eval()
    scripted = torch.jit.script(model)
    tmp = a.out + f".tmp.{os.getpid()}"
    try:
        scripted.save(tmp)
        os.replace(tmp, a.out)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        fail(f"cannot write {a.out}: {e.strerror}")

    backbone_info = (f"torchvision {torchvision.__version__} resnet50, fc = Identity "
                     f"(2048-d global average pool), eval mode, torch {torch.__version__}")
    print(f"wrote {a.out} (sha256 {sha256(a.out)})")
    print("next:")
    print(f"  mixvae prepare --dataset stl10 --raw STL10_DIR --backbone {a.out} --out data/stl10.h5 \\\n"
          f"    --backbone-info '{backbone_info}' \\\n"
          f"    --weights-info '{weights_info}'")


if __name__ == "__main__":
    main()
