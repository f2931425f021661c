// Turning an arbitrary picture into a model input: PNG decoding (libpng), grayscale conversion,
// polarity, aspect-preserving padding and resizing. Pixel values stay on the IDX byte scale
// (0 = black, 255 = white) as floats, so that the model's own input_scale applies unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mlp {

struct GrayImage {
    int rows = 0;
    int cols = 0;
    std::vector<float> pixels;  // rows * cols, row-major, in [0, 255]
    float at(int r, int c) const { return pixels[size_t(r) * size_t(cols) + size_t(c)]; }
};

// What the PNG held before conversion, for messages ("640x480 RGBA").
struct PngInfo {
    int width = 0;
    int height = 0;
    std::string color;  // "gray", "gray+alpha", "RGB", "RGBA", "palette", "palette+alpha"
    bool sixteen_bit = false;
};

// Images above this many pixels are refused before their pixels are allocated.
constexpr int64_t k_max_png_pixels = int64_t(1) << 26;

// Decodes any PNG (gray, gray+alpha, RGB, RGBA, palette, 1- to 16-bit) to grayscale with the
// Rec. 601 luma weights (0.299 R + 0.587 G + 0.114 B, as PIL's convert("L") does). Pixels with
// alpha are composited over white, since transparent parts of a drawing show as paper. 16-bit
// samples without gamma information are taken as sRGB, like 8-bit ones (a gAMA or sRGB chunk,
// when present, is honoured by libpng). `path` is used only in messages; every defect throws a
// DataError naming it.
GrayImage decode_png(const std::string& bytes, const std::string& path, PngInfo* info = nullptr);

// read_file + decode_png.
GrayImage read_png(const std::string& path, PngInfo* info = nullptr);

// Mean of the outermost ring of pixels, in [0, 255]: the background's brightness.
double border_mean(const GrayImage& image);

// 255 - v for every pixel.
void invert(GrayImage& image);

// Pads the shorter side with `fill`, centred, so that the image has the aspect ratio
// rows : cols and the picture is not stretched by the resize that follows.
GrayImage pad_to_aspect(const GrayImage& image, int rows, int cols, float fill);

// Resamples to rows x cols, separably per axis: an axis that shrinks is area-averaged (each
// output pixel is the coverage-weighted mean of the input pixels under it, so thin strokes fade
// instead of vanishing); an axis that grows (or keeps its size) is interpolated linearly between
// pixel centres, with the edges clamped.
GrayImage resize(const GrayImage& image, int rows, int cols);

enum class Polarity { Auto, Invert, Keep };

struct PreparedImage {
    GrayImage image;  // rows x cols, in the data set's polarity
    bool inverted = false;
    double border_mean = 0.0;  // of the decoded image, before any inversion
};

// The data sets of the MNIST family are light strokes on a black background; a photo or a
// drawing is usually dark on light. Auto inverts when the border is brighter than mid-grey.
// Then pad_to_aspect (with the background's brightness) and resize.
PreparedImage prepare_image(const GrayImage& image, int rows, int cols, Polarity polarity);

}  // namespace mlp
