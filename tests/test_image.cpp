// PNG decoding to grayscale for every colour type and bit depth, alpha, bad files, resizing,
// padding and polarity (host/data/image.hpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

#include "host/base/error.hpp"
#include "host/data/image.hpp"
#include "png_writer.hpp"

namespace mlp {
namespace {

using test::encode_png;
using ::testing::HasSubstr;

GrayImage decode(const std::string& png, PngInfo* info = nullptr) {
    return decode_png(png, "test.png", info);
}

GrayImage make_image(int rows, int cols, std::vector<float> pixels) {
    GrayImage g;
    g.rows = rows;
    g.cols = cols;
    g.pixels = std::move(pixels);
    return g;
}

TEST(PngDecode, Gray8KeepsValues) {
    PngInfo info;
    const GrayImage g =
        decode(encode_png(3, 2, test::k_png_gray, 8, {0, 1, 2, 128, 254, 255}), &info);
    EXPECT_EQ(g.rows, 2);
    EXPECT_EQ(g.cols, 3);
    EXPECT_THAT(g.pixels, ::testing::ElementsAre(0, 1, 2, 128, 254, 255));
    EXPECT_EQ(info.width, 3);
    EXPECT_EQ(info.height, 2);
    EXPECT_EQ(info.color, "gray");
    EXPECT_FALSE(info.sixteen_bit);
}

TEST(PngDecode, LowBitDepthGrayIsScaledToFullRange) {
    const GrayImage one = decode(encode_png(3, 1, test::k_png_gray, 1, {0, 1, 0}));
    EXPECT_THAT(one.pixels, ::testing::ElementsAre(0, 255, 0));
    const GrayImage four = decode(encode_png(2, 1, test::k_png_gray, 4, {0, 15}));
    EXPECT_THAT(four.pixels, ::testing::ElementsAre(0, 255));
}

TEST(PngDecode, RgbUsesRec601Luma) {
    PngInfo info;
    const GrayImage g = decode(
        encode_png(4, 1, test::k_png_rgb, 8, {255, 0, 0, 0, 255, 0, 0, 0, 255, 90, 90, 90}), &info);
    EXPECT_EQ(info.color, "RGB");
    EXPECT_NEAR(g.pixels[0], 0.299 * 255, 1e-3);
    EXPECT_NEAR(g.pixels[1], 0.587 * 255, 1e-3);
    EXPECT_NEAR(g.pixels[2], 0.114 * 255, 1e-3);
    EXPECT_NEAR(g.pixels[3], 90, 1e-3);
}

TEST(PngDecode, AlphaIsCompositedOverWhite) {
    PngInfo info;
    // Black, fully transparent / opaque / half; then red, opaque.
    const GrayImage g = decode(encode_png(4, 1, test::k_png_rgba, 8,
                                          {0, 0, 0, 0, 0, 0, 0, 255, 0, 0, 0, 128, 255, 0, 0, 255}),
                               &info);
    EXPECT_EQ(info.color, "RGBA");
    EXPECT_NEAR(g.pixels[0], 255, 1e-3);
    EXPECT_NEAR(g.pixels[1], 0, 1e-3);
    EXPECT_NEAR(g.pixels[2], 255 * (1 - 128 / 255.0), 1e-3);
    EXPECT_NEAR(g.pixels[3], 0.299 * 255, 1e-3);

    const GrayImage ga =
        decode(encode_png(2, 1, test::k_png_gray_alpha, 8, {40, 255, 40, 0}), &info);
    EXPECT_EQ(info.color, "gray+alpha");
    EXPECT_NEAR(ga.pixels[0], 40, 1e-3);
    EXPECT_NEAR(ga.pixels[1], 255, 1e-3);
}

TEST(PngDecode, SixteenBitSamplesAreReadAsSrgbNotLinear) {
    PngInfo info;
    const GrayImage g =
        decode(encode_png(3, 1, test::k_png_gray, 16, {0, 128 * 257, 65535}), &info);
    EXPECT_TRUE(info.sixteen_bit);
    EXPECT_NEAR(g.pixels[0], 0, 1);
    EXPECT_NEAR(g.pixels[1], 128, 1);  // a linear reading would give about 188
    EXPECT_NEAR(g.pixels[2], 255, 1);

    const GrayImage rgba = decode(
        encode_png(2, 1, test::k_png_rgba, 16, {60 * 257, 60 * 257, 60 * 257, 65535, 0, 0, 0, 0}));
    EXPECT_NEAR(rgba.pixels[0], 60, 1);
    EXPECT_NEAR(rgba.pixels[1], 255, 1);
}

TEST(PngDecode, PaletteWithTransparency) {
    PngInfo info;
    // Entry 0 dark blue, opaque; entry 1 black, transparent (tRNS covers the first two).
    const GrayImage g = decode(
        encode_png(2, 1, test::k_png_palette, 8, {0, 1}, {0, 0, 100, 0, 0, 0}, {255, 0}), &info);
    EXPECT_EQ(info.color, "palette+alpha");
    EXPECT_NEAR(g.pixels[0], 0.114 * 100, 1e-3);
    EXPECT_NEAR(g.pixels[1], 255, 1e-3);
}

TEST(PngDecode, BadFilesNameTheFileAndTheDefect) {
    try {
        decode_png("GIF89a....", "cat.gif");
        FAIL() << "no error";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), HasSubstr("cat.gif"));
        EXPECT_THAT(e.what(), HasSubstr("not a PNG file"));
    }
    const std::string good = encode_png(8, 8, test::k_png_gray, 8, std::vector<uint16_t>(64, 7));
    try {
        decode_png(good.substr(0, good.size() - 30), "cut.png");
        FAIL() << "no error";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), HasSubstr("cut.png: cannot decode PNG"));
    }
    std::string bad_crc = good;
    bad_crc[8 + 8 + 13] ^= 1;  // IHDR's CRC
    EXPECT_THROW(decode_png(bad_crc, "crc.png"), DataError);
    try {
        read_png("/nonexistent/x.png");
        FAIL() << "no error";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), HasSubstr("/nonexistent/x.png"));
    }
}

TEST(Resize, SameSizeIsTheIdentity) {
    std::vector<float> px(35);
    std::iota(px.begin(), px.end(), 0.0f);
    const GrayImage g = make_image(5, 7, px);
    EXPECT_EQ(resize(g, 5, 7).pixels, px);
}

TEST(Resize, IntegerShrinkAveragesBlocks) {
    // 4x4 -> 2x2: each output is the mean of a 2x2 block.
    const GrayImage g = make_image(4, 4,
                                   {0, 2, 10, 10,    //
                                    4, 6, 10, 10,    //
                                    100, 100, 0, 0,  //
                                    100, 100, 0, 255});
    const GrayImage r = resize(g, 2, 2);
    EXPECT_THAT(r.pixels, ::testing::Pointwise(::testing::FloatNear(1e-4f),
                                               std::vector<float>{3, 10, 100, 63.75f}));
}

TEST(Resize, FractionalShrinkKeepsTheMeanAndThinStrokes) {
    // 100x100 with a one-pixel vertical line: area averaging keeps its ink, spread out.
    GrayImage g = make_image(100, 100, std::vector<float>(10000, 0.0f));
    for (int r = 0; r < 100; ++r) g.pixels[size_t(r) * 100 + 50] = 255.0f;
    const GrayImage s = resize(g, 28, 28);
    const double in_mean = std::accumulate(g.pixels.begin(), g.pixels.end(), 0.0) / 10000;
    const double out_mean = std::accumulate(s.pixels.begin(), s.pixels.end(), 0.0) / (28 * 28);
    EXPECT_NEAR(out_mean, in_mean, 1e-3);
    EXPECT_GT(s.at(14, 14), 50.0f);  // column 50 lands in output column 14 (50 * 28 / 100)
    EXPECT_EQ(s.at(14, 0), 0.0f);
}

TEST(Resize, EnlargingInterpolatesBetweenPixelCentres) {
    const GrayImage g = make_image(1, 2, {0, 100});
    const GrayImage r = resize(g, 1, 4);
    // Output centres at input x = -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    EXPECT_THAT(r.pixels, ::testing::Pointwise(::testing::FloatNear(1e-4f),
                                               std::vector<float>{0, 25, 75, 100}));
}

TEST(Resize, NearestUpscaleThenShrinkIsExact) {
    std::vector<float> px(12);
    std::iota(px.begin(), px.end(), 10.0f);
    const GrayImage g = make_image(3, 4, px);
    GrayImage big = make_image(12, 16, std::vector<float>(12 * 16));
    for (int r = 0; r < 12; ++r)
        for (int c = 0; c < 16; ++c) big.pixels[size_t(r) * 16 + size_t(c)] = g.at(r / 4, c / 4);
    EXPECT_EQ(resize(big, 3, 4).pixels, px);
}

TEST(PadToAspect, CentresTheImageAndFillsTheRest) {
    const GrayImage g = make_image(2, 4, std::vector<float>(8, 9.0f));
    const GrayImage p = pad_to_aspect(g, 28, 28, 1.0f);
    ASSERT_EQ(p.rows, 4);
    ASSERT_EQ(p.cols, 4);
    for (int c = 0; c < 4; ++c) {
        EXPECT_EQ(p.at(0, c), 1.0f);
        EXPECT_EQ(p.at(1, c), 9.0f);
        EXPECT_EQ(p.at(2, c), 9.0f);
        EXPECT_EQ(p.at(3, c), 1.0f);
    }
    const GrayImage tall =
        pad_to_aspect(make_image(6, 2, std::vector<float>(12, 9.0f)), 3, 2, 0.0f);
    EXPECT_EQ(tall.rows, 6);
    EXPECT_EQ(tall.cols, 4);
    EXPECT_EQ(tall.at(0, 0), 0.0f);
    EXPECT_EQ(tall.at(0, 1), 9.0f);
    EXPECT_EQ(pad_to_aspect(g, 1, 2, 0.0f).pixels, g.pixels);
}

TEST(Polarity, DarkOnLightIsInvertedLightOnDarkIsNot) {
    // A 20x20 dark square on white, 40x40; it fills the middle four of the 4x4 output pixels.
    GrayImage paper = make_image(40, 40, std::vector<float>(1600, 250.0f));
    for (int r = 10; r < 30; ++r)
        for (int c = 10; c < 30; ++c) paper.pixels[size_t(r) * 40 + size_t(c)] = 5.0f;
    const PreparedImage p = prepare_image(paper, 4, 4, Polarity::Auto);
    EXPECT_TRUE(p.inverted);
    EXPECT_NEAR(p.border_mean, 250.0, 1e-9);
    EXPECT_NEAR(p.image.at(0, 0), 5.0f, 1e-3);  // background now dark
    EXPECT_NEAR(p.image.at(1, 1), 250.0f, 1e-3);
    EXPECT_NEAR(p.image.at(2, 2), 250.0f, 1e-3);

    GrayImage night = paper;
    invert(night);
    const PreparedImage n = prepare_image(night, 4, 4, Polarity::Auto);
    EXPECT_FALSE(n.inverted);
    EXPECT_EQ(n.image.pixels, p.image.pixels);

    EXPECT_FALSE(prepare_image(paper, 4, 4, Polarity::Keep).inverted);
    EXPECT_TRUE(prepare_image(night, 4, 4, Polarity::Invert).inverted);
}

TEST(Polarity, PaddingUsesTheBackground) {
    // A wide white picture with a dark bar: padded rows must be dark after inversion, not
    // black-on-white stripes the model never saw.
    GrayImage wide = make_image(10, 20, std::vector<float>(200, 255.0f));
    for (int c = 5; c < 15; ++c) wide.pixels[size_t(5) * 20 + size_t(c)] = 0.0f;
    const PreparedImage p = prepare_image(wide, 20, 20, Polarity::Auto);
    EXPECT_TRUE(p.inverted);
    EXPECT_NEAR(p.image.at(0, 0), 0.0f, 1e-3);
    EXPECT_NEAR(p.image.at(19, 19), 0.0f, 1e-3);
    EXPECT_NEAR(p.image.at(10, 10), 255.0f, 1e-3);  // the bar, in the centre
}

}  // namespace
}  // namespace mlp
