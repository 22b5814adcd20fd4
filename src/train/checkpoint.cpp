#include "train/checkpoint.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <map>
#include <sstream>
#include <type_traits>
#include <utility>

#include "core/errors.h"
#include "core/files.h"
#include "core/sha256.h"
#include "data/h5.h"
#include "train/fused_adam.h"

namespace mixvae::train {
namespace h5 = mixvae::data::h5;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kFormat = 1;

// HDF5's write errors span several lines; the first names the problem (e.g. "File too
// large", "No space left on device" come back in its errno text, which is kept too).
std::string first_line_of(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  const size_t em = text.find("error message = '");
  if (em != std::string::npos) {
    const size_t b = em + 17, e = text.find('\'', b);
    line += " (" + text.substr(b, e == std::string::npos ? std::string::npos : e - b) + ")";
  }
  return line;
}

std::string fmt_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Digest of a tensor: its name, then its bytes.
void add_tensor(Sha256& sha, const std::string& name, const torch::Tensor& t) {
  sha.add(name);
  sha.add(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
}

// Everything that is stored as a tensor, by name, in a fixed (sorted) order.
std::map<std::string, torch::Tensor> tensors_of(torch::nn::Module& model, torch::optim::Adam* opt) {
  std::map<std::string, torch::Tensor> out;
  std::map<const void*, std::string> names;
  for (const auto& p : model.named_parameters(true)) {
    out["params/" + p.key()] = p.value().detach().to(torch::kCPU).contiguous();
    names[p.value().unsafeGetTensorImpl()] = p.key();
  }
  for (const auto& b : model.named_buffers(true))
    out["buffers/" + b.key()] = b.value().detach().to(torch::kCPU).contiguous();
  if (opt) {
    auto& state = opt->state();
    for (const auto& group : opt->param_groups()) {
      for (const auto& p : group.params()) {
        auto it = state.find(adam_state_key(p));
        if (it == state.end()) continue;
        auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
        const std::string base = "optim/" + names.at(p.unsafeGetTensorImpl());
        out[base + "/exp_avg"] = s.exp_avg().detach().to(torch::kCPU).contiguous();
        out[base + "/exp_avg_sq"] = s.exp_avg_sq().detach().to(torch::kCPU).contiguous();
        out[base + "/step"] = torch::full({1}, static_cast<int64_t>(s.step()), torch::kInt64);
      }
    }
  }
  return out;
}

std::vector<hsize_t> dims(const torch::Tensor& t) {
  std::vector<hsize_t> d;
  for (auto s : t.sizes()) d.push_back(static_cast<hsize_t>(s));
  return d;
}

}  // namespace

void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Adam* opt,
                     const CheckpointMeta& meta) {
  h5::quiet();
  const std::string tmp = temporary_path(path);
  try {
    auto tensors = tensors_of(model, opt);
    Sha256 sha;
    {
      h5::File f = h5::create(tmp);
      for (const auto& [name, t] : tensors) {
        add_tensor(sha, name, t);
        if (t.scalar_type() == torch::kFloat32)
          h5::write_array<float>(f, name, t.data_ptr<float>(), dims(t));
        else if (t.scalar_type() == torch::kInt64)
          h5::write_array<int64_t>(f, name, t.data_ptr<int64_t>(), dims(t));
        else if (t.scalar_type() == torch::kFloat64)
          h5::write_array<double>(f, name, t.data_ptr<double>(), dims(t));
        else
          throw std::runtime_error("checkpoint: unsupported dtype for " + name);
      }
      h5::write_attr(f, "format", std::string("mixvae-checkpoint"));
      h5::write_attr(f, "format_version", kFormat);
      h5::write_attr(f, "stage_index", meta.stage_index);
      h5::write_attr(f, "epoch", meta.epoch);
      h5::write_attr(f, "stage_name", meta.stage_name);
      h5::write_attr(f, "model", meta.model);
      h5::write_attr(f, "input_dim", meta.input_dim);
      h5::write_attr(f, "bernoulli", int64_t(meta.bernoulli ? 1 : 0));
      h5::write_attr(f, "dataset", meta.dataset);
      h5::write_attr(f, "config", meta.config_ini);
      h5::write_attr(f, "config_hash", meta.config_hash);
      if (!meta.data_file.empty()) h5::write_attr(f, "data_file", meta.data_file);
      h5::write_attr(f, "world_size", meta.world_size);
      if (meta.rollbacks > 0) {
        h5::write_attr(f, "lr_scale", meta.lr_scale);
        h5::write_attr(f, "rollbacks", meta.rollbacks);
      }
      if (meta.step > 0) {
        h5::write_attr(f, "step", meta.step);
        h5::write_attr(f, "epoch_seen", meta.epoch_seen);
        std::string sums = fmt_double(meta.epoch_loss_sum);
        for (double v : meta.epoch_part_sums) sums += " " + fmt_double(v);
        h5::write_attr(f, "epoch_sums", sums);
      }
      h5::write_attr(f, "sha256", sha.hex());
      f.flush();
      f.close();
    }
    // Renamed only once its data is on the disk: a file system that reports a failure
    // only now (a full disk with delayed allocation, an I/O error) must not replace the
    // good checkpoint with a hole.
    sync_or_throw(tmp);
    // The checkpoint being replaced becomes the previous one (the fallback when the new one
    // is found damaged). Through a hard link, so that `path` names a whole checkpoint at
    // every moment (a `mixvae eval` or `sample` of a running job never finds it missing):
    // link it as a temporary name, rename that over the previous one, then rename the new
    // file over `path`; each rename replaces atomically. A file system without hard links
    // takes two renames (path is missing between them; a crash there leaves the previous
    // one, which --resume falls back to).
    if (fs::exists(path)) {
      const std::string prev = previous_checkpoint_path(path), link = temporary_path(prev);
      std::error_code ec;
      fs::remove(link, ec);
      fs::create_hard_link(path, link, ec);
      if (!ec)
        fs::rename(link, prev);
      else
        fs::rename(path, prev);
    }
    fs::rename(tmp, path);
    sync_path(fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string(), true);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw DataError(path + ": cannot write checkpoint: " + first_line_of(e.what()));
  }
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  h5::File f = h5::open_read(path);
  if (h5::read_attr_string(f, "format").value_or("") != "mixvae-checkpoint")
    throw data_error(path, "not a mixvae checkpoint (no 'format' attribute)");
  CheckpointMeta m;
  auto need_int = [&](const char* k) {
    auto v = h5::read_attr_int(f, k);
    if (!v) throw data_error(path, std::string("checkpoint lacks attribute '") + k + "'");
    return *v;
  };
  auto need_str = [&](const char* k) {
    auto v = h5::read_attr_string(f, k);
    if (!v) throw data_error(path, std::string("checkpoint lacks attribute '") + k + "'");
    return *v;
  };
  m.stage_index = need_int("stage_index");
  m.epoch = need_int("epoch");
  m.stage_name = need_str("stage_name");
  m.model = need_str("model");
  m.input_dim = need_int("input_dim");
  m.bernoulli = need_int("bernoulli") != 0;
  m.dataset = need_str("dataset");
  m.config_ini = need_str("config");
  m.config_hash = need_str("config_hash");
  m.data_file = h5::read_attr_string(f, "data_file").value_or("");
  m.world_size = need_int("world_size");
  m.lr_scale = h5::read_attr_double(f, "lr_scale").value_or(1.0);
  m.rollbacks = h5::read_attr_int(f, "rollbacks").value_or(0);
  m.step = h5::read_attr_int(f, "step").value_or(0);
  if (m.step > 0) {
    m.epoch_seen = need_int("epoch_seen");
    std::istringstream sums(need_str("epoch_sums"));
    sums >> m.epoch_loss_sum;
    for (double v; sums >> v;) m.epoch_part_sums.push_back(v);
  }
  return m;
}

namespace {
// Every stored tensor, after checking the file's checksum over them.
std::map<std::string, torch::Tensor> read_verified(const std::string& path) {
  h5::File f = h5::open_read(path);
  const std::string stored_sha = h5::read_attr_string(f, "sha256").value_or("");
  torch::NoGradGuard ng;
  // Read everything first, verify, and only then touch the model.
  std::map<std::string, torch::Tensor> loaded;
  Sha256 sha;
  for (const std::string group : {"params", "buffers", "optim"}) {
    if (!h5::exists(f, group)) continue;
    for (const auto& rel : h5::list_datasets(f, group)) {
      const std::string name = group + "/" + rel;
      std::vector<hsize_t> d = h5::dims_of(f, name);
      std::vector<int64_t> shape(d.begin(), d.end());
      torch::Tensor t;
      if (rel.size() >= 5 && rel.compare(rel.size() - 5, 5, "/step") == 0) {
        auto v = h5::read_array<int64_t>(f, name);
        t = torch::tensor(v, torch::kInt64).view(shape);
      } else {
        auto v = h5::read_array<float>(f, name);
        t = torch::from_blob(v.data(), shape, torch::kFloat32).clone();
      }
      loaded[name] = t;
    }
  }
  for (const auto& [name, t] : loaded) add_tensor(sha, name, t);
  if (sha.hex() != stored_sha) throw data_error(path, "checkpoint checksum mismatch (corrupted or truncated file)");
  return loaded;
}
}  // namespace

std::string previous_checkpoint_path(const std::string& path) {
  fs::path p(path);
  return (p.parent_path() / (p.stem().string() + ".prev" + p.extension().string())).string();
}

void verify_checkpoint(const std::string& path) {
  read_checkpoint_meta(path);
  read_verified(path);
}

void require_checkpoint(const std::string& path) {
  if (!fs::exists(path) && !fs::exists(previous_checkpoint_path(path)))
    throw UsageError("--resume: no checkpoint at " + path);
}

std::string usable_checkpoint(const std::string& path, std::string* note,
                              const std::function<void(const std::string&)>& open) {
  const std::string prev = previous_checkpoint_path(path);
  require_checkpoint(path);
  std::string problem = fs::exists(path) ? "" : path + ": missing (a crash between the two renames of a save)";
  if (problem.empty()) {
    try {
      open(path);
      return path;
    } catch (const DataError& e) {
      if (!fs::exists(prev)) throw;
      problem = e.what();
    }
  }
  open(prev);  // throws with its own problem when the previous one is bad too
  // Keep the damaged file for inspection, out of the way of the next save's rotation
  // (which would otherwise move it over the good previous checkpoint).
  std::error_code ec;
  if (fs::exists(path)) fs::rename(path, fs::path(path).replace_extension(".damaged.h5"), ec);
  if (note) *note = problem + "; falling back to the previous checkpoint " + prev;
  return prev;
}

CheckpointMeta load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Adam* opt) {
  CheckpointMeta meta = read_checkpoint_meta(path);
  torch::NoGradGuard ng;
  std::map<std::string, torch::Tensor> loaded = read_verified(path);

  for (auto& p : model.named_parameters(true)) {
    auto it = loaded.find("params/" + p.key());
    if (it == loaded.end()) throw data_error(path, "checkpoint has no parameter '" + p.key() + "' (another model?)");
    if (it->second.sizes() != p.value().sizes())
      throw data_error(path, "parameter '" + p.key() + "' has shape " + c10::str(it->second.sizes()) +
                                 ", the model expects " + c10::str(p.value().sizes()));
    p.value().copy_(it->second);
  }
  for (auto& b : model.named_buffers(true)) {
    auto it = loaded.find("buffers/" + b.key());
    if (it != loaded.end()) b.value().copy_(it->second);
  }
  if (opt) {
    std::map<const void*, std::string> names;
    for (const auto& p : model.named_parameters(true)) names[p.value().unsafeGetTensorImpl()] = p.key();
    auto& state = opt->state();
    for (const auto& group : opt->param_groups()) {
      for (const auto& p : group.params()) {
        const std::string base = "optim/" + names.at(p.unsafeGetTensorImpl());
        auto ea = loaded.find(base + "/exp_avg");
        if (ea == loaded.end()) continue;
        auto st = std::make_unique<torch::optim::AdamParamState>();
        st->step(loaded.at(base + "/step").item<int64_t>());
        st->exp_avg(ea->second.to(p.device()).clone());  // saved from any device, restored to this one
        st->exp_avg_sq(loaded.at(base + "/exp_avg_sq").to(p.device()).clone());
        state[adam_state_key(p)] = std::move(st);
      }
    }
  }
  return meta;
}

}  // namespace mixvae::train
