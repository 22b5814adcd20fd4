#pragma once
// STL-10 through a TorchScript backbone (needs LibTorch: compiled into mixvae_torch, not
// the torch-free mixvae_base).
#include <cstdint>
#include <string>

namespace mixvae::data {

struct Stl10BackboneOptions {
  std::string backbone;        // TorchScript file (torch.jit.save of e.g. a ResNet-50 whose fc is Identity)
  int64_t batch_size = 100;    // images per forward pass
  int64_t image_size = 96;     // 96: the images as they are; otherwise bilinear resize to this side
  std::string device = "cpu";  // "cpu", "cuda", "cuda:1", ...
  std::string backbone_info;   // recorded as the `backbone` attribute (default: the file's name)
  std::string weights_info;    // recorded as `backbone_weights` (default: "inside <file>, sha256 ...")
  bool progress = false;       // progress line (core/log.h Progress)
};

// Reads the 13,000 labelled images (train_X.bin then test_X.bin, see stl10.h), feeds them
// in batches as float [B, 3, S, S] tensors (RGB, pixels/255 normalised with the ImageNet
// mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225), bilinearly resized when S !=
// 96) to the module's forward() under no_grad in eval mode, and stores its output as
// features: [B, F] or [B, F, 1, 1] (flattened). The preprocessing, the backbone file's
// SHA-256, batch size and image size are recorded as attributes. DataError naming the
// backbone file if it does not load or its output is not one feature row per image (or
// not finite); DataError naming the STL-10 file for bad images or labels; UsageError for
// bad options (batch/image size < 1, a device that does not exist).
void prepare_stl10_backbone(const std::string& raw_dir, const Stl10BackboneOptions& options,
                            const std::string& out_path);

}  // namespace mixvae::data
