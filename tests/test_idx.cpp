// IDX reader: valid raw and gzip files of any image size, and one test per defect, each checking
// that the message names the file and says what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "host/base/error.hpp"
#include "host/data/idx.hpp"
#include "tests/idx_fixtures.hpp"

namespace {

using mlp::test::Bytes;
using mlp::test::TempDir;
using mlp::test::data_error_of;
using testing::AllOf;
using testing::HasSubstr;
using testing::StartsWith;


std::string images_error(const std::string& path, uint64_t limit = mlp::k_default_idx_limit_bytes) {
    return data_error_of([&] { mlp::read_idx_images(path, limit); });
}

std::string labels_error(const std::string& path, uint64_t limit = mlp::k_default_idx_limit_bytes) {
    return data_error_of([&] { mlp::read_idx_labels(path, limit); });
}

void expect_pixels_match(const mlp::IdxImages& img, uint32_t n, uint32_t rows, uint32_t cols) {
    ASSERT_EQ(img.n_items, n);
    ASSERT_EQ(img.n_rows, int(rows));
    ASSERT_EQ(img.n_cols, int(cols));
    ASSERT_EQ(img.n_features(), int64_t(rows) * cols);
    ASSERT_EQ(img.pixels.size(), size_t(n) * rows * cols);
    for (uint32_t i = 0; i < n; ++i)
        for (uint32_t r = 0; r < rows; ++r)
            for (uint32_t c = 0; c < cols; ++c)
                ASSERT_EQ(img.pixels[(size_t(i) * rows + r) * cols + c],
                          mlp::test::fixture_pixel(i, r, c))
                    << "item " << i << " row " << r << " col " << c;
}

Bytes concat(Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// ---- valid files ----

TEST(IdxRead, RawImages28x28) {
    TempDir dir;
    std::string p = dir.write("images", mlp::test::idx_images_bytes(4, 28, 28));
    expect_pixels_match(mlp::read_idx_images(p), 4, 28, 28);
}

TEST(IdxRead, GzipImages28x28) {
    TempDir dir;
    std::string p = dir.write("images.gz", mlp::test::idx_images_bytes(4, 28, 28), true);
    expect_pixels_match(mlp::read_idx_images(p), 4, 28, 28);
}

TEST(IdxRead, NonSquareImageSize) {
    TempDir dir;
    std::string raw = dir.write("raw", mlp::test::idx_images_bytes(3, 7, 5));
    std::string gz = dir.write("gz", mlp::test::idx_images_bytes(3, 7, 5), true);
    expect_pixels_match(mlp::read_idx_images(raw), 3, 7, 5);
    expect_pixels_match(mlp::read_idx_images(gz), 3, 7, 5);
}

TEST(IdxRead, GzipDetectedByContentNotName) {
    TempDir dir;
    std::string gz_no_suffix = dir.write("images", mlp::test::idx_images_bytes(2, 3, 4), true);
    std::string raw_gz_suffix = dir.write("images.gz", mlp::test::idx_images_bytes(2, 3, 4));
    expect_pixels_match(mlp::read_idx_images(gz_no_suffix), 2, 3, 4);
    expect_pixels_match(mlp::read_idx_images(raw_gz_suffix), 2, 3, 4);
}

TEST(IdxRead, RawAndGzipLabels) {
    TempDir dir;
    std::vector<uint8_t> labels = {0, 9, 3, 255, 7};
    std::string raw = dir.write("raw", mlp::test::idx_labels_bytes(labels));
    std::string gz = dir.write("gz", mlp::test::idx_labels_bytes(labels), true);
    for (const std::string& p : {raw, gz}) {
        mlp::IdxLabels l = mlp::read_idx_labels(p);
        EXPECT_EQ(l.n_items, 5);
        EXPECT_EQ(l.labels, labels) << p;
    }
}

TEST(IdxRead, MultiMemberGzip) {
    TempDir dir;
    Bytes whole = mlp::test::idx_images_bytes(5, 4, 6);
    Bytes head(whole.begin(), whole.begin() + 37);
    Bytes tail(whole.begin() + 37, whole.end());
    std::string p = dir.file("multi.gz");
    mlp::test::write_bytes(p, concat(mlp::test::gzip_bytes(head), mlp::test::gzip_bytes(tail)));
    EXPECT_EQ(mlp::read_file_maybe_gzip(p), whole);
    expect_pixels_match(mlp::read_idx_images(p), 5, 4, 6);
}

TEST(IdxRead, GzipLargerThanOneChunk) {
    TempDir dir;
    // 300 x 40 x 50 = 600000 bytes: several inflate chunks and input refills.
    std::string p = dir.write("big.gz", mlp::test::idx_images_bytes(300, 40, 50), true);
    expect_pixels_match(mlp::read_idx_images(p), 300, 40, 50);
}

TEST(IdxRead, ReadFileMaybeGzipReturnsDecodedBytes) {
    TempDir dir;
    Bytes data = {1, 2, 3, 4, 5, 0x1f};
    EXPECT_EQ(mlp::read_file_maybe_gzip(dir.write("raw", data)), data);
    EXPECT_EQ(mlp::read_file_maybe_gzip(dir.write("gz", data, true)), data);
    EXPECT_EQ(mlp::read_file_maybe_gzip(dir.write("empty", {})), Bytes{});
}

TEST(IdxRead, ParseFromMemory) {
    mlp::IdxImages img = mlp::parse_idx_images(mlp::test::idx_images_bytes(2, 2, 9), "mem");
    expect_pixels_match(img, 2, 2, 9);
    mlp::IdxLabels l = mlp::parse_idx_labels(mlp::test::idx_labels_bytes({4, 2}), "mem");
    EXPECT_EQ(l.labels, (std::vector<uint8_t>{4, 2}));
}

TEST(IdxRead, FileExactlyAtLimitIsAccepted) {
    TempDir dir;
    Bytes bytes = mlp::test::idx_images_bytes(2, 3, 3);
    std::string raw = dir.write("raw", bytes);
    std::string gz = dir.write("gz", bytes, true);
    expect_pixels_match(mlp::read_idx_images(raw, bytes.size()), 2, 3, 3);
    expect_pixels_match(mlp::read_idx_images(gz, bytes.size()), 2, 3, 3);
}

// ---- unreadable files ----

TEST(IdxDefect, MissingFile) {
    TempDir dir;
    std::string p = dir.file("nope-idx3-ubyte");
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "), HasSubstr("file not found")));
}

TEST(IdxDefect, DirectoryInsteadOfFile) {
    TempDir dir;
    EXPECT_THAT(images_error(dir.path()),
                AllOf(StartsWith(dir.path() + ": "), HasSubstr("is a directory")));
}

TEST(IdxDefect, UnreadableFile) {
    if (geteuid() == 0) GTEST_SKIP() << "running as root: file permissions do not stop reads";
    TempDir dir;
    std::string p = dir.write("locked", mlp::test::idx_images_bytes(1, 2, 2));
    std::filesystem::permissions(p, std::filesystem::perms::none);
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "), HasSubstr("cannot read file")));
}

// ---- header defects ----

TEST(IdxDefect, EmptyFile) {
    TempDir dir;
    std::string p = dir.write("empty", {});
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "), HasSubstr("empty file")));
    EXPECT_THAT(labels_error(p), AllOf(StartsWith(p + ": "), HasSubstr("empty file")));
}

TEST(IdxDefect, TooShortForMagic) {
    TempDir dir;
    std::string p = dir.write("short", {0, 0, 8});
    EXPECT_THAT(images_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("too short for an IDX header: 3 bytes")));
}

TEST(IdxDefect, TooShortForDimensions) {
    TempDir dir;
    std::string p = dir.write("short", mlp::test::idx_header(0x803, {10, 28}));
    EXPECT_THAT(images_error(p),
                AllOf(StartsWith(p + ": "),
                      HasSubstr("too short for an IDX header: 12 bytes, need 16")));
    std::string q = dir.write("short-labels", mlp::test::idx_header(0x801, {}));
    EXPECT_THAT(labels_error(q), AllOf(StartsWith(q + ": "),
                                       HasSubstr("too short for an IDX header: 4 bytes, need 8")));
}

TEST(IdxDefect, WrongMagicSaysFoundAndExpected) {
    TempDir dir;
    std::string p = dir.write("png", mlp::test::idx_header(0x89504e47, {1, 1, 1}));
    EXPECT_THAT(images_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("wrong magic number 0x89504e47"),
                      HasSubstr("expected 0x00000803 (IDX images)")));
    EXPECT_THAT(labels_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("wrong magic number 0x89504e47"),
                      HasSubstr("expected 0x00000801 (IDX labels)")));
}

TEST(IdxDefect, WrongDataType) {
    TempDir dir;
    // 0x0D is IDX "float": valid IDX, but not the unsigned bytes this reader handles.
    std::string p = dir.write("floats", mlp::test::idx_header(0x00000d03, {1, 1, 1}));
    EXPECT_THAT(images_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("unsupported IDX data type 0x0d"),
                      HasSubstr("magic 0x00000d03"), HasSubstr("expected 0x08")));
}

TEST(IdxDefect, LabelFileGivenAsImages) {
    TempDir dir;
    std::string p = dir.write("labels", mlp::test::idx_labels_bytes({1, 2, 3}));
    EXPECT_THAT(images_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("wrong IDX dimension count 1"),
                      HasSubstr("magic 0x00000801"), HasSubstr("expected 3"),
                      HasSubstr("0x00000803 (IDX images)")));
}

TEST(IdxDefect, ImageFileGivenAsLabels) {
    TempDir dir;
    std::string p = dir.write("images", mlp::test::idx_images_bytes(1, 2, 2));
    EXPECT_THAT(labels_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("wrong IDX dimension count 3"),
                      HasSubstr("magic 0x00000803"), HasSubstr("0x00000801 (IDX labels)")));
}

TEST(IdxDefect, ZeroSizedDimension) {
    TempDir dir;
    std::string no_items = dir.write("n0", mlp::test::idx_header(0x803, {0, 28, 28}));
    std::string no_rows = dir.write("r0", mlp::test::idx_header(0x803, {10, 0, 28}));
    std::string no_labels = dir.write("l0", mlp::test::idx_header(0x801, {0}));
    EXPECT_THAT(images_error(no_items),
                AllOf(StartsWith(no_items + ": "), HasSubstr("zero-sized dimension 0")));
    EXPECT_THAT(images_error(no_rows),
                AllOf(StartsWith(no_rows + ": "), HasSubstr("zero-sized dimension 1")));
    EXPECT_THAT(labels_error(no_labels),
                AllOf(StartsWith(no_labels + ": "), HasSubstr("zero-sized dimension 0")));
}

TEST(IdxDefect, DimensionProductOverflow) {
    TempDir dir;
    uint32_t big = 0xffffffffu;
    std::string p = dir.write("huge", mlp::test::idx_header(0x803, {big, big, big}));
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "),
                                       HasSubstr("dimensions 4294967295 x 4294967295 x 4294967295"),
                                       HasSubstr("overflow")));
    // The same header handed straight to the parser, without any size limit in play.
    EXPECT_THAT(data_error_of([&] { mlp::parse_idx_images(mlp::read_file_maybe_gzip(p), p); }),
                HasSubstr("overflow"));
}

// ---- size defects ----

TEST(IdxDefect, TruncatedDataSaysExpectedAndPresent) {
    TempDir dir;
    Bytes b = mlp::test::idx_images_bytes(2, 4, 4);  // 32 data bytes
    b.resize(b.size() - 12);
    std::string p = dir.write("cut", b);
    EXPECT_THAT(images_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("truncated"),
                      HasSubstr("needs 32 data bytes, but only 20 are present")));
    Bytes l = mlp::test::idx_labels_bytes({1, 2, 3, 4});
    l.pop_back();
    std::string q = dir.write("cut-labels", l);
    EXPECT_THAT(labels_error(q), AllOf(StartsWith(q + ": "),
                                       HasSubstr("needs 4 data bytes, but only 3 are present")));
}

TEST(IdxDefect, TrailingBytes) {
    TempDir dir;
    Bytes b = concat(mlp::test::idx_images_bytes(2, 4, 4), {9, 9, 9});
    std::string p = dir.write("long", b);
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "),
                                       HasSubstr("3 trailing bytes after the 32 data bytes")));
    std::string q = dir.write("long-labels", concat(mlp::test::idx_labels_bytes({1}), {0}));
    EXPECT_THAT(labels_error(q), AllOf(StartsWith(q + ": "), HasSubstr("1 trailing bytes")));
}

TEST(IdxDefect, TruncatedInsideGzipIsReportedAfterDecoding) {
    TempDir dir;
    Bytes b = mlp::test::idx_images_bytes(2, 4, 4);
    b.resize(b.size() - 1);
    std::string p = dir.write("cut.gz", b, true);
    EXPECT_THAT(images_error(p),
                AllOf(StartsWith(p + ": "), HasSubstr("but only 31 are present")));
}

TEST(IdxDefect, RawFileOverLimitIsRefusedBeforeReading) {
    TempDir dir;
    std::string p = dir.write("big", mlp::test::idx_images_bytes(10, 10, 10));  // 1016 bytes
    EXPECT_THAT(images_error(p, 1000),
                AllOf(StartsWith(p + ": "),
                      HasSubstr("file is 1016 bytes, over the size limit of 1000 bytes")));
}

TEST(IdxDefect, HeaderClaimOverLimitIsRefused) {
    TempDir dir;
    // A 16-byte file claiming 2^30 data bytes: must be refused without allocating them.
    std::string p = dir.write("liar", mlp::test::idx_header(0x803, {1024, 1024, 1024}));
    EXPECT_THAT(images_error(p, 1 << 20),
                AllOf(StartsWith(p + ": "), HasSubstr("header claims 1024 x 1024 x 1024"),
                      HasSubstr("over the size limit of 1048576 bytes")));
}

// ---- gzip defects ----

TEST(IdxDefect, GzipOverLimitStopsInflating) {
    TempDir dir;
    Bytes zeros(4 << 20, 0);  // 4 MiB of zeros compress to a few KiB
    std::string p = dir.write("bomb.gz", concat(mlp::test::idx_header(0x803, {4096, 32, 32}),
                                                zeros), true);
    EXPECT_THAT(data_error_of([&] { mlp::read_file_maybe_gzip(p, 65536); }),
                AllOf(StartsWith(p + ": "),
                      HasSubstr("decompresses to more than the size limit of 65536 bytes")));
    EXPECT_THAT(images_error(p, 65536), HasSubstr("size limit of 65536"));
}

TEST(IdxDefect, TruncatedGzipStream) {
    TempDir dir;
    Bytes gz = mlp::test::gzip_bytes(mlp::test::idx_images_bytes(20, 28, 28));
    gz.resize(gz.size() / 2);
    std::string p = dir.file("cut.gz");
    mlp::test::write_bytes(p, gz);
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "), HasSubstr("truncated gzip stream")));
    std::string magic_only = dir.file("magic.gz");
    mlp::test::write_bytes(magic_only, {0x1f, 0x8b});
    EXPECT_THAT(images_error(magic_only),
                AllOf(StartsWith(magic_only + ": "), HasSubstr("truncated gzip stream")));
}

TEST(IdxDefect, GzipMissingTrailerIsTruncated) {
    TempDir dir;
    Bytes gz = mlp::test::gzip_bytes(mlp::test::idx_labels_bytes({1, 2, 3}));
    gz.resize(gz.size() - 8);  // drop CRC32 and ISIZE
    std::string p = dir.file("notrailer.gz");
    mlp::test::write_bytes(p, gz);
    EXPECT_THAT(labels_error(p), AllOf(StartsWith(p + ": "), HasSubstr("truncated gzip stream")));
}

TEST(IdxDefect, GzipBadChecksum) {
    TempDir dir;
    Bytes gz = mlp::test::gzip_bytes(mlp::test::idx_images_bytes(3, 5, 5));
    gz[gz.size() - 8] ^= 0xff;  // first byte of the CRC32 trailer
    std::string p = dir.file("crc.gz");
    mlp::test::write_bytes(p, gz);
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "), HasSubstr("broken gzip stream"),
                                       HasSubstr("incorrect data check")));
}

TEST(IdxDefect, GzipBadHeader) {
    TempDir dir;
    Bytes gz = mlp::test::gzip_bytes(mlp::test::idx_images_bytes(3, 5, 5));
    gz[2] = 0x07;  // compression method: only 8 (deflate) exists
    std::string p = dir.file("method.gz");
    mlp::test::write_bytes(p, gz);
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "), HasSubstr("broken gzip stream"),
                                       HasSubstr("unknown compression method")));
}

TEST(IdxDefect, GzipCorruptDeflateData) {
    TempDir dir;
    Bytes gz = mlp::test::gzip_bytes(mlp::test::idx_images_bytes(50, 28, 28));
    for (size_t i = 10; i < 60; ++i) gz[i] = 0xff;
    std::string p = dir.file("garbled.gz");
    mlp::test::write_bytes(p, gz);
    // Garbage can fail as bad codes or as a stream that never ends; either way it is named.
    EXPECT_THAT(images_error(p), AllOf(StartsWith(p + ": "), HasSubstr("gzip stream")));
}

TEST(IdxDefect, GarbageAfterGzipStream) {
    TempDir dir;
    Bytes gz = concat(mlp::test::gzip_bytes(mlp::test::idx_labels_bytes({1, 2})), {'x', 'y'});
    std::string p = dir.file("tail.gz");
    mlp::test::write_bytes(p, gz);
    EXPECT_THAT(labels_error(p), AllOf(StartsWith(p + ": "),
                                       HasSubstr("unexpected bytes after the end of the gzip")));
}

}  // namespace
