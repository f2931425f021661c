#include "host/data/image.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/base/error.hpp"
#include "host/base/read_file.hpp"

namespace mlp {

// A photo from a phone is a few MB; anything far beyond that is not a picture meant for this.
constexpr uint64_t k_max_png_file_bytes = uint64_t(256) << 20;

// png_image_begin_read folds a tRNS chunk into the ALPHA flag.
static std::string color_name(png_uint_32 format) {
    if (format & PNG_FORMAT_FLAG_COLORMAP) {
        return (format & PNG_FORMAT_FLAG_ALPHA) ? "palette+alpha" : "palette";
    }
    if (format & PNG_FORMAT_FLAG_COLOR) return (format & PNG_FORMAT_FLAG_ALPHA) ? "RGBA" : "RGB";
    return (format & PNG_FORMAT_FLAG_ALPHA) ? "gray+alpha" : "gray";
}

// The simplified libpng API (png_image_*) reports errors through image.message instead of
// longjmp, so no setjmp has to cross C++ frames here.
namespace {
struct PngImageFree {
    png_image* image;
    ~PngImageFree() { png_image_free(image); }
};
}  // namespace

GrayImage decode_png(const std::string& bytes, const std::string& path, PngInfo* info) {
    static const unsigned char k_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (bytes.size() < 8 || std::memcmp(bytes.data(), k_signature, 8) != 0) {
        throw DataError(path, "not a PNG file (no PNG signature; only PNG images are read)");
    }
    png_image image;
    std::memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    PngImageFree guard{&image};
    if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
        throw DataError(path, std::string("cannot decode PNG: ") + image.message);
    }
    if (image.width == 0 || image.height == 0 ||
        int64_t(image.width) * int64_t(image.height) > k_max_png_pixels) {
        throw DataError(path, "PNG is " + std::to_string(image.width) + "x" +
                                  std::to_string(image.height) + " pixels, over the limit of " +
                                  std::to_string(k_max_png_pixels) + " pixels");
    }
    if (info != nullptr) {
        info->width = int(image.width);
        info->height = int(image.height);
        info->color = color_name(image.format);
        info->sixteen_bit = (image.format & PNG_FORMAT_FLAG_LINEAR) != 0;
    }
    // The file's 16-bit samples would otherwise be taken as linear light and brightened.
    image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    image.format = PNG_FORMAT_RGBA;
    std::vector<png_byte> rgba(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, nullptr, rgba.data(), 0, nullptr)) {
        throw DataError(path, std::string("cannot decode PNG: ") + image.message);
    }

    GrayImage gray;
    gray.rows = int(image.height);
    gray.cols = int(image.width);
    gray.pixels.resize(size_t(gray.rows) * size_t(gray.cols));
    for (size_t i = 0; i < gray.pixels.size(); ++i) {
        const png_byte* p = &rgba[4 * i];
        const double luma = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        const double alpha = p[3] / 255.0;
        gray.pixels[i] = float(alpha * luma + (1.0 - alpha) * 255.0);
    }
    return gray;
}

GrayImage read_png(const std::string& path, PngInfo* info) {
    return decode_png(read_file(path, k_max_png_file_bytes), path, info);
}

double border_mean(const GrayImage& image) {
    double sum = 0.0;
    int64_t n = 0;
    for (int r = 0; r < image.rows; ++r) {
        const bool edge_row = r == 0 || r == image.rows - 1;
        for (int c = 0; c < image.cols; ++c) {
            if (edge_row || c == 0 || c == image.cols - 1) {
                sum += image.at(r, c);
                ++n;
            }
        }
    }
    return n ? sum / double(n) : 0.0;
}

void invert(GrayImage& image) {
    for (float& v : image.pixels) v = 255.0f - v;
}

GrayImage pad_to_aspect(const GrayImage& image, int rows, int cols, float fill) {
    // Compare image.rows / image.cols with rows / cols without rounding.
    const int64_t lhs = int64_t(image.rows) * cols;
    const int64_t rhs = int64_t(rows) * image.cols;
    GrayImage out;
    if (lhs == rhs) return image;
    if (lhs > rhs) {  // too tall: widen
        out.rows = image.rows;
        out.cols = int((lhs + rows - 1) / rows);
    } else {  // too wide: heighten
        out.cols = image.cols;
        out.rows = int((rhs + cols - 1) / cols);
    }
    out.pixels.assign(size_t(out.rows) * size_t(out.cols), fill);
    const int top = (out.rows - image.rows) / 2;
    const int left = (out.cols - image.cols) / 2;
    for (int r = 0; r < image.rows; ++r) {
        std::copy_n(&image.pixels[size_t(r) * size_t(image.cols)], image.cols,
                    &out.pixels[size_t(r + top) * size_t(out.cols) + size_t(left)]);
    }
    return out;
}

namespace {
// The input pixels one output pixel of an axis reads, and their weights (summing to 1).
struct Taps {
    int first = 0;
    std::vector<float> weights;
};
}  // namespace

static std::vector<Taps> axis_taps(int n_in, int n_out) {
    std::vector<Taps> taps(static_cast<size_t>(n_out));
    const double scale = double(n_in) / double(n_out);
    for (int j = 0; j < n_out; ++j) {
        Taps& t = taps[size_t(j)];
        if (n_out < n_in) {
            // Output pixel j covers [j * scale, (j + 1) * scale) of the input.
            const double lo = j * scale;
            const double hi = (j + 1) * scale;
            t.first = int(std::floor(lo));
            const int last = std::min(n_in - 1, int(std::ceil(hi)) - 1);
            for (int i = t.first; i <= last; ++i) {
                const double overlap = std::min(hi, double(i + 1)) - std::max(lo, double(i));
                t.weights.push_back(float(std::max(overlap, 0.0) / scale));
            }
        } else {
            const double x = std::clamp((j + 0.5) * scale - 0.5, 0.0, double(n_in - 1));
            t.first = std::min(int(std::floor(x)), n_in - 1);
            const double frac = x - t.first;
            t.weights.push_back(float(1.0 - frac));
            if (t.first + 1 < n_in) t.weights.push_back(float(frac));
        }
    }
    return taps;
}

GrayImage resize(const GrayImage& image, int rows, int cols) {
    if (image.rows <= 0 || image.cols <= 0 || rows <= 0 || cols <= 0) {
        throw Error("resize: empty image or target size");
    }
    const std::vector<Taps> col_taps = axis_taps(image.cols, cols);
    const std::vector<Taps> row_taps = axis_taps(image.rows, rows);
    // Columns first (image.rows x cols), then rows; accumulate in double.
    std::vector<double> wide(size_t(image.rows) * size_t(cols), 0.0);
    for (int r = 0; r < image.rows; ++r) {
        for (int c = 0; c < cols; ++c) {
            const Taps& t = col_taps[size_t(c)];
            double s = 0.0;
            for (size_t k = 0; k < t.weights.size(); ++k) {
                s += t.weights[k] * image.at(r, t.first + int(k));
            }
            wide[size_t(r) * size_t(cols) + size_t(c)] = s;
        }
    }
    GrayImage out;
    out.rows = rows;
    out.cols = cols;
    out.pixels.resize(size_t(rows) * size_t(cols));
    for (int r = 0; r < rows; ++r) {
        const Taps& t = row_taps[size_t(r)];
        for (int c = 0; c < cols; ++c) {
            double s = 0.0;
            for (size_t k = 0; k < t.weights.size(); ++k) {
                s += t.weights[k] * wide[size_t(t.first + int(k)) * size_t(cols) + size_t(c)];
            }
            out.pixels[size_t(r) * size_t(cols) + size_t(c)] = float(std::clamp(s, 0.0, 255.0));
        }
    }
    return out;
}

PreparedImage prepare_image(const GrayImage& image, int rows, int cols, Polarity polarity) {
    PreparedImage p;
    p.border_mean = border_mean(image);
    p.inverted =
        polarity == Polarity::Invert || (polarity == Polarity::Auto && p.border_mean > 127.5);
    GrayImage work = image;
    if (p.inverted) invert(work);
    const float background = float(p.inverted ? 255.0 - p.border_mean : p.border_mean);
    p.image = resize(pad_to_aspect(work, rows, cols, background), rows, cols);
    return p;
}

}  // namespace mlp
