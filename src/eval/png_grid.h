#pragma once
// A grid of greyscale images (samples, reconstructions) written as one PNG.
#include <cstdint>
#include <string>
#include <vector>

namespace mixvae::eval {

// Writes grid_rows x grid_cols greyscale images of height x width as one 8-bit greyscale
// PNG. `images` is row-major: image (r, c) starts at (r*grid_cols + c)*height*width.
// Values in [0,1] map to 0..255 (rounded); outside values are clamped and NaN becomes 0.
// Tiles are separated, and framed, by `pad` white pixels, so the PNG is
// grid_cols*width + (grid_cols+1)*pad wide and grid_rows*height + (grid_rows+1)*pad high.
//
// The file appears atomically (temp file + rename), so a reader never sees half a PNG.
// Throws std::invalid_argument for bad dimensions or a size mismatch (a caller bug), and
// mixvae::DataError("PATH: cannot write PNG: REASON") if the file cannot be written; no
// temp file is left behind.
void write_png_grid(const std::string& path, const std::vector<float>& images, int64_t grid_rows, int64_t grid_cols,
                    int64_t height, int64_t width, int pad = 2);

}  // namespace mixvae::eval
