#include "eval/png_grid.h"

#include <png.h>

#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "core/errors.h"
#include "core/files.h"

namespace mixvae::eval {
namespace {

// White separators: the images are mostly light strokes on black, so a white frame
// shows the tile boundaries where a black one would vanish into the background.
constexpr png_byte kPadValue = 255;

// libpng reports fatal errors through a callback that must not return. We record the
// message in this plain struct and longjmp back to encode(); only trivially destructible
// objects live between setjmp and longjmp, so no C++ destructor is skipped.
struct PngErrorState {
  char message[256];
};

void on_png_error(png_structp png, png_const_charp msg) {
  auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "%s", msg ? msg : "libpng error");
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}  // warnings are not failures

// Encodes `rows` into `fp`. Returns false with `state->message` set on failure.
bool encode(FILE* fp, png_bytepp rows, png_uint_32 w, png_uint_32 h, PngErrorState* state) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, state, on_png_error, on_png_warning);
  if (png == nullptr) {
    std::snprintf(state->message, sizeof(state->message), "png_create_write_struct failed");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    std::snprintf(state->message, sizeof(state->message), "png_create_info_struct failed");
    return false;
  }
  // png and info are not modified after setjmp, so they need not be volatile.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

png_byte to_byte(float v) {
  if (!(v > 0.0f)) return 0;  // also NaN
  if (v >= 1.0f) return 255;
  return static_cast<png_byte>(std::lround(v * 255.0f));
}

}  // namespace

void write_png_grid(const std::string& path, const std::vector<float>& images, int64_t grid_rows, int64_t grid_cols,
                    int64_t height, int64_t width, int pad) {
  const int64_t kMaxSide = PNG_UINT_31_MAX;
  if (grid_rows < 1 || grid_cols < 1 || height < 1 || width < 1 || pad < 0 || grid_rows > kMaxSide ||
      grid_cols > kMaxSide || height > kMaxSide || width > kMaxSide) {
    throw std::invalid_argument("write_png_grid: bad grid " + std::to_string(grid_rows) + "x" +
                                std::to_string(grid_cols) + " of " + std::to_string(height) + "x" +
                                std::to_string(width) + " images, pad " + std::to_string(pad));
  }
  const int64_t out_w = grid_cols * width + (grid_cols + 1) * pad;
  const int64_t out_h = grid_rows * height + (grid_rows + 1) * pad;
  if (out_w > kMaxSide || out_h > kMaxSide) {
    throw std::invalid_argument("write_png_grid: image of " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                                " pixels is too large for PNG");
  }
  // out_w * out_h < 2^62, so this product cannot overflow.
  const int64_t expected = grid_rows * grid_cols * height * width;
  if (images.size() != static_cast<size_t>(expected)) {
    throw std::invalid_argument("write_png_grid: got " + std::to_string(images.size()) + " values, expected " +
                                std::to_string(expected));
  }

  std::vector<png_byte> pixels(static_cast<size_t>(out_w * out_h), kPadValue);
  for (int64_t r = 0; r < grid_rows; ++r) {
    for (int64_t c = 0; c < grid_cols; ++c) {
      const float* img = images.data() + (r * grid_cols + c) * height * width;
      const int64_t y0 = pad + r * (height + pad), x0 = pad + c * (width + pad);
      for (int64_t y = 0; y < height; ++y) {
        png_byte* dst = pixels.data() + (y0 + y) * out_w + x0;
        for (int64_t x = 0; x < width; ++x) dst[x] = to_byte(img[y * width + x]);
      }
    }
  }
  std::vector<png_bytep> row_ptrs(static_cast<size_t>(out_h));
  for (int64_t y = 0; y < out_h; ++y) row_ptrs[static_cast<size_t>(y)] = pixels.data() + y * out_w;

  // The pid keeps concurrent writers (e.g. ranks sharing a file system) off each other's
  // temp files; rename() then replaces `path` in one step.
  const std::string tmp = temporary_path(path);
  auto fail = [&](const std::string& reason) -> DataError {
    std::remove(tmp.c_str());
    return data_error(path, "cannot write PNG: " + reason);
  };

  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (fp == nullptr) throw fail(std::strerror(errno));
  PngErrorState state{};
  const bool encoded =
      encode(fp, row_ptrs.data(), static_cast<png_uint_32>(out_w), static_cast<png_uint_32>(out_h), &state);
  const bool stream_error = std::ferror(fp) != 0;
  const int saved_errno = errno;
  // fclose flushes the buffer; a full disk often shows up only here.
  const bool closed = std::fclose(fp) == 0;
  if (!encoded) throw fail(state.message);
  if (stream_error) throw fail(std::strerror(saved_errno));
  if (!closed) throw fail(std::strerror(errno));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw fail(std::strerror(errno));
}

}  // namespace mixvae::eval
