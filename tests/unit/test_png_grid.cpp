#include <gtest/gtest.h>
#include <png.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"
#include "eval/png_grid.h"

namespace mixvae::eval {
namespace {

namespace fs = std::filesystem;

class PngGridTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "mixvae_png_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Files in dir_ (recursively) whose name contains ".tmp.".
  int count_temp_files() const {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir_)) {
      if (e.path().filename().string().find(".tmp.") != std::string::npos) ++n;
    }
    return n;
  }
  fs::path dir_;
};

struct Gray {
  png_uint_32 width = 0, height = 0;
  std::vector<png_byte> pixels;
};

Gray read_gray(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    throw std::runtime_error(std::string("read ") + path + ": " + image.message);
  }
  Gray g;
  g.width = image.width;
  g.height = image.height;
  EXPECT_EQ(image.format, static_cast<png_uint_32>(PNG_FORMAT_GRAY));  // written as 8-bit gray
  image.format = PNG_FORMAT_GRAY;
  g.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, g.pixels.data(), 0, nullptr)) {
    throw std::runtime_error(std::string("read ") + path + ": " + image.message);
  }
  return g;
}

TEST_F(PngGridTest, WritesGridWithSeparators) {
  const int64_t R = 2, C = 3, H = 4, W = 5;
  const int pad = 2;
  // Pixel (y, x) of image (r, c) is k/255 with k distinct per pixel, so it maps exactly.
  std::vector<float> images(R * C * H * W);
  auto level = [&](int64_t r, int64_t c, int64_t y, int64_t x) {
    return static_cast<int>((r * C + c) * 20 + y * 5 + x);
  };
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) images[((r * C + c) * H + y) * W + x] = level(r, c, y, x) / 255.0f;
  // Clamping, NaN and rounding, in image (1, 2) which has no exact-level checks there.
  auto& last = images;
  const int64_t base = (1 * C + 2) * H * W;
  last[base + 0] = -0.5f;
  last[base + 1] = 1.7f;
  last[base + 2] = std::nanf("");
  last[base + 3] = 0.5f;  // 127.5 rounds to 128
  last[base + 4] = 1.0f;

  const std::string path = (dir_ / "grid.png").string();
  write_png_grid(path, images, R, C, H, W, pad);
  EXPECT_EQ(count_temp_files(), 0);

  const Gray g = read_gray(path);
  ASSERT_EQ(g.width, static_cast<png_uint_32>(C * W + (C + 1) * pad));   // 23
  ASSERT_EQ(g.height, static_cast<png_uint_32>(R * H + (R + 1) * pad));  // 14
  auto px = [&](int64_t y, int64_t x) { return static_cast<int>(g.pixels[y * g.width + x]); };

  std::vector<char> in_tile(g.width * g.height, 0);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t c = 0; c < C; ++c) {
      const int64_t y0 = pad + r * (H + pad), x0 = pad + c * (W + pad);
      for (int64_t y = 0; y < H; ++y) {
        for (int64_t x = 0; x < W; ++x) {
          in_tile[(y0 + y) * g.width + x0 + x] = 1;
          if (r == 1 && c == 2 && y == 0) continue;  // checked below
          EXPECT_EQ(px(y0 + y, x0 + x), level(r, c, y, x)) << r << "," << c << "," << y << "," << x;
        }
      }
    }
  }
  const int64_t y0 = pad + 1 * (H + pad), x0 = pad + 2 * (W + pad);
  EXPECT_EQ(px(y0, x0 + 0), 0);
  EXPECT_EQ(px(y0, x0 + 1), 255);
  EXPECT_EQ(px(y0, x0 + 2), 0);
  EXPECT_EQ(px(y0, x0 + 3), 128);
  EXPECT_EQ(px(y0, x0 + 4), 255);
  // Everything outside the tiles is separator (white).
  for (png_uint_32 i = 0; i < g.width * g.height; ++i) {
    if (!in_tile[i]) {
      EXPECT_EQ(g.pixels[i], 255) << "pixel " << i;
    }
  }
}

TEST_F(PngGridTest, ZeroPadAndOverwrite) {
  const std::string path = (dir_ / "g.png").string();
  write_png_grid(path, std::vector<float>(2 * 3 * 3, 1.0f), 1, 2, 3, 3, 0);
  write_png_grid(path, std::vector<float>(2 * 3 * 3, 0.0f), 1, 2, 3, 3, 0);  // replaces it
  const Gray g = read_gray(path);
  EXPECT_EQ(g.width, 6u);
  EXPECT_EQ(g.height, 3u);
  for (png_byte p : g.pixels) EXPECT_EQ(p, 0);
  EXPECT_EQ(count_temp_files(), 0);
}

TEST_F(PngGridTest, MissingDirectoryThrowsDataError) {
  const std::string path = (dir_ / "no_such_dir" / "grid.png").string();
  try {
    write_png_grid(path, std::vector<float>(4, 0.5f), 1, 1, 2, 2);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": cannot write PNG: ", 0), 0u) << msg;
  }
  EXPECT_FALSE(fs::exists(dir_ / "no_such_dir"));
  EXPECT_EQ(count_temp_files(), 0);
}

TEST_F(PngGridTest, FailedRenameRemovesTempFile) {
  // The target is a non-empty directory: the temp file is written, rename() fails.
  const fs::path target = dir_ / "taken";
  fs::create_directories(target / "child");
  EXPECT_THROW(write_png_grid(target.string(), std::vector<float>(4, 0.5f), 1, 1, 2, 2), DataError);
  EXPECT_EQ(count_temp_files(), 0);
  EXPECT_TRUE(fs::is_directory(target));
}

TEST_F(PngGridTest, BadArgumentsThrow) {
  const std::string path = (dir_ / "bad.png").string();
  EXPECT_THROW(write_png_grid(path, std::vector<float>(5, 0.f), 1, 1, 2, 2), std::invalid_argument);
  EXPECT_THROW(write_png_grid(path, {}, 0, 1, 2, 2), std::invalid_argument);
  EXPECT_THROW(write_png_grid(path, std::vector<float>(4, 0.f), 1, 1, 2, 2, -1), std::invalid_argument);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(count_temp_files(), 0);
}

}  // namespace
}  // namespace mixvae::eval
