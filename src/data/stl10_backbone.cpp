#include "data/stl10_backbone.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <vector>

#include "core/errors.h"
#include "core/log.h"
#include "core/sha256.h"
#include "data/schema.h"
#include "data/stl10.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;

// torch's messages carry a C++ backtrace after the first line.
std::string first_line(const char* what) {
  std::string s(what);
  const size_t nl = s.find('\n');
  return s.substr(0, nl == std::string::npos ? s.size() : nl).substr(0, 300);
}

std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

std::string preprocessing_text(const Stl10BackboneOptions& o) {
  return "RGB float32 NCHW, pixels/255 normalised with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, "
         "0.224, 0.225), " +
         (o.image_size == kStl10Side ? std::string("not resized (96x96)")
                                     : "bilinear resize 96x96 -> " + std::to_string(o.image_size) + "x" +
                                           std::to_string(o.image_size) + " (align_corners=false)") +
         "; forward() in eval mode without gradients, batches of " + std::to_string(o.batch_size) +
         "; output [B, F] (or [B, F, 1, 1] flattened) kept as it is";
}

}  // namespace

void prepare_stl10_backbone(const std::string& raw_dir, const Stl10BackboneOptions& options,
                            const std::string& out_path) {
  if (options.batch_size < 1)
    throw UsageError("stl10: --batch-size must be >= 1, got " + std::to_string(options.batch_size));
  if (options.image_size < 1)
    throw UsageError("stl10: --image-size must be >= 1, got " + std::to_string(options.image_size));
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(options.device);
  } catch (const std::exception&) {
    throw UsageError("stl10: --device '" + options.device + "' is not a device (cpu, cuda, cuda:N)");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw UsageError("stl10: --device " + options.device + " but no CUDA device is available");
  if (!fs::is_regular_file(options.backbone))
    throw data_error(options.backbone, fs::exists(options.backbone) ? "is not a regular file"
                                                                    : "no such file (expected a TorchScript module)");

  const Stl10Files files = locate_stl10(raw_dir, true);
  const std::vector<int64_t> labels = read_stl10_labels(files);
  const std::string backbone_hash = sha256_file(options.backbone);

  torch::jit::Module module;
  try {
    module = torch::jit::load(options.backbone, device);
  } catch (const std::exception& e) {
    throw data_error(options.backbone, "cannot load as a TorchScript module: " + first_line(e.what()));
  }
  module.eval();
  torch::NoGradGuard no_grad;

  Stl10Images images(files);
  const int64_t n = images.size();
  const int64_t batch = std::min(options.batch_size, n);
  const int64_t steps = (n + batch - 1) / batch;
  const auto float_on_device = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const torch::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}, float_on_device).view({1, 3, 1, 1});
  const torch::Tensor stdev = torch::tensor({0.229f, 0.224f, 0.225f}, float_on_device).view({1, 3, 1, 1});
  std::vector<uint8_t> pixels(static_cast<size_t>(batch * kStl10ImageBytes));
  std::vector<float> features;
  int64_t d = -1;

  log::Progress progress(options.progress, "stl10", 1, 1, steps, n);
  for (int64_t step = 0, first = 0; first < n; ++step, first += batch) {
    const int64_t count = std::min(batch, n - first);
    images.read(first, count, pixels.data());
    torch::Tensor x = torch::from_blob(pixels.data(), {count, kStl10Channels, kStl10Side, kStl10Side}, torch::kUInt8)
                          .to(float_on_device)
                          .div_(255.0f);
    x = (x - mean) / stdev;
    if (options.image_size != kStl10Side)
      x = torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{options.image_size, options.image_size})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false));
    torch::jit::IValue out;
    try {
      out = module.forward({x});
    } catch (const std::exception& e) {
      throw data_error(options.backbone,
                       "forward() failed on a batch of shape " + shape_of(x) + ": " + first_line(e.what()));
    }
    if (!out.isTensor())
      throw data_error(options.backbone,
                       "forward() returned a " + out.tagKind() + ", expected a feature tensor [B, F]");
    torch::Tensor f = out.toTensor();
    if (f.dim() == 4 && f.size(2) == 1 && f.size(3) == 1) f = f.flatten(1);
    if (f.dim() != 2 || f.size(0) != count || f.size(1) < 1)
      throw data_error(options.backbone, "forward() returned shape " + shape_of(f) + " for " + std::to_string(count) +
                                             " images, expected [" + std::to_string(count) +
                                             ", F] (one feature row per image)");
    f = f.to(torch::kCPU, torch::kFloat32).contiguous();
    if (d < 0) {
      d = f.size(1);
      features.reserve(static_cast<size_t>(n * d));
    }
    if (!torch::isfinite(f).all().item<bool>())
      throw data_error(options.backbone, "produced NaN/Inf features for images " + std::to_string(first) + "-" +
                                             std::to_string(first + count - 1));
    features.insert(features.end(), f.data_ptr<float>(), f.data_ptr<float>() + count * d);
    progress.step(step + 1, 0.0);
  }
  progress.finish(0.0, std::to_string(n) + " images -> " + std::to_string(d) + " features");

  const std::string base = fs::path(options.backbone).filename().string();
  FeatureProvenance provenance;
  provenance.backbone = options.backbone_info.empty() ? base : options.backbone_info;
  provenance.weights = options.weights_info.empty() ? "inside " + base + " (TorchScript, sha256 " + backbone_hash + ")"
                                                    : options.weights_info;
  provenance.preprocessing = preprocessing_text(options);
  std::vector<std::pair<std::string, std::string>> extra{{"sha256_" + base, backbone_hash}};
  for (const std::string& path : {files.train_x, files.train_y, files.test_x, files.test_y})
    extra.push_back(file_checksum(path));
  const std::vector<std::pair<std::string, int64_t>> extra_int{{"num_train", files.n_train},
                                                               {"num_test", files.n_test},
                                                               {"image_size", options.image_size},
                                                               {"batch_size", options.batch_size}};
  write_stl10(out_path, features, n, d, labels, provenance, extra, extra_int);
}

}  // namespace mixvae::data
