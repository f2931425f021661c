// A minimal PNG encoder for tests: every colour type and bit depth, optional palette and tRNS,
// no filtering, no gamma chunks. Written by hand rather than with libpng so that the tests build
// exactly the files they mean (libpng's simplified writer adds gamma chunks to 16-bit images).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mlp::test {

enum PngColor : int {
    k_png_gray = 0,
    k_png_rgb = 2,
    k_png_palette = 3,
    k_png_gray_alpha = 4,
    k_png_rgba = 6
};

inline int png_channels(int color_type) {
    switch (color_type) {
        case k_png_gray:
            return 1;
        case k_png_rgb:
            return 3;
        case k_png_palette:
            return 1;
        case k_png_gray_alpha:
            return 2;
        case k_png_rgba:
            return 4;
    }
    throw std::invalid_argument("bad PNG colour type");
}

inline void png_put_be32(std::string& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(char((v >> s) & 0xffu));
}

inline void png_chunk(std::string& out, const char* type, const std::string& data) {
    png_put_be32(out, uint32_t(data.size()));
    const std::string body = std::string(type, 4) + data;
    out += body;
    png_put_be32(
        out, uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))));
}

// `samples`: height * width * channels values, row-major, each below 2^bit_depth.
// `palette`: RGB triples (colour type 3); `trns`: the tRNS chunk's raw bytes, if any.
inline std::string encode_png(int width, int height, int color_type, int bit_depth,
                              const std::vector<uint16_t>& samples,
                              const std::vector<uint8_t>& palette = {},
                              const std::vector<uint8_t>& trns = {}) {
    const int channels = png_channels(color_type);
    if (samples.size() != size_t(width) * size_t(height) * size_t(channels)) {
        throw std::invalid_argument("encode_png: wrong number of samples");
    }
    std::string raw;
    for (int y = 0; y < height; ++y) {
        raw.push_back('\0');  // filter type 0: none
        uint32_t acc = 0;
        int n_bits = 0;
        for (int i = 0; i < width * channels; ++i) {
            const uint16_t v = samples[size_t(y) * size_t(width * channels) + size_t(i)];
            if (bit_depth == 16) {
                raw.push_back(char(v >> 8));
                raw.push_back(char(v & 0xff));
            } else if (bit_depth == 8) {
                raw.push_back(char(v));
            } else {
                acc = (acc << bit_depth) | v;
                n_bits += bit_depth;
                if (n_bits == 8) {
                    raw.push_back(char(acc));
                    acc = 0;
                    n_bits = 0;
                }
            }
        }
        if (n_bits > 0) raw.push_back(char(acc << (8 - n_bits)));  // pad the row's last byte
    }
    uLongf packed_size = compressBound(uLong(raw.size()));
    std::string packed(packed_size, '\0');
    if (compress2(reinterpret_cast<Bytef*>(&packed[0]), &packed_size,
                  reinterpret_cast<const Bytef*>(raw.data()), uLong(raw.size()), 6) != Z_OK) {
        throw std::runtime_error("encode_png: zlib failed");
    }
    packed.resize(packed_size);

    std::string png("\x89PNG\r\n\x1a\n", 8);
    std::string ihdr;
    png_put_be32(ihdr, uint32_t(width));
    png_put_be32(ihdr, uint32_t(height));
    ihdr += {char(bit_depth), char(color_type), 0, 0, 0};
    png_chunk(png, "IHDR", ihdr);
    if (!palette.empty()) png_chunk(png, "PLTE", std::string(palette.begin(), palette.end()));
    if (!trns.empty()) png_chunk(png, "tRNS", std::string(trns.begin(), trns.end()));
    png_chunk(png, "IDAT", packed);
    png_chunk(png, "IEND", "");
    return png;
}

}  // namespace mlp::test
