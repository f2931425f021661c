// Input limits: a header that claims more data than its file holds, or more than the limit, is
// refused before the data is read or allocated (raw files), or as soon as the header has been
// decoded (gzip, whose decoded size is unknown up front); --max-input-mb sets the limit for data
// files and models on the command line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "host/base/error.hpp"
#include "host/cli/cli.hpp"
#include "host/data/idx.hpp"
#include "host/formats/safetensors.hpp"
#include "host/model/model.hpp"
#include "tests/idx_fixtures.hpp"
#include "tests/synthetic.hpp"

namespace {

using mlp::test::Bytes;
using mlp::test::TempDir;
using mlp::test::data_error_of;
using testing::AllOf;
using testing::HasSubstr;
using testing::StartsWith;

constexpr uint64_t k_mib = uint64_t(1) << 20;

// Peak resident memory of this process so far. ctest runs every test in its own process, so a
// reader that loads a large file shows up as a jump of the peak.
uint64_t peak_rss_bytes() {
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    return uint64_t(usage.ru_maxrss) * 1024;
}


// A file of `size` bytes that starts with `head` and is a hole after it: large on paper, yet it
// costs neither disk nor memory unless someone reads it.
std::string sparse_file(const TempDir& dir, const std::string& name, const Bytes& head,
                        uint64_t size) {
    const std::string path = dir.write(name, head);
    if (truncate(path.c_str(), off_t(size)) != 0) throw std::runtime_error("truncate failed");
    return path;
}

// One gzip member holding `head` and then `n_zeros` zero bytes, deflated as it is generated so
// that the test itself never holds the decoded data.
Bytes gzip_head_and_zeros(const Bytes& head, uint64_t n_zeros) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::runtime_error("deflateInit2 failed");
    }
    Bytes out;
    Bytes buf(1 << 16);
    auto pump = [&](const uint8_t* data, size_t n, int flush) {
        zs.next_in = const_cast<Bytef*>(data);
        zs.avail_in = uInt(n);
        do {
            zs.next_out = buf.data();
            zs.avail_out = uInt(buf.size());
            deflate(&zs, flush);
            out.insert(out.end(), buf.begin(), buf.end() - zs.avail_out);
        } while (zs.avail_out == 0);
    };
    pump(head.data(), head.size(), Z_NO_FLUSH);
    const Bytes zeros(k_mib, 0);
    for (uint64_t left = n_zeros; left > 0;) {
        const uint64_t n = std::min<uint64_t>(left, zeros.size());
        pump(zeros.data(), size_t(n), Z_NO_FLUSH);
        left -= n;
    }
    pump(nullptr, 0, Z_FINISH);
    deflateEnd(&zs);
    return out;
}

TEST(InputLimits, RawHeaderClaimingMoreThanTheFileHoldsIsRefusedBeforeReading) {
    TempDir dir;
    // 1 GiB claimed, 256 MiB present: a reader that loaded the file first would show 256 MiB.
    const std::string p =
        sparse_file(dir, "short", mlp::test::idx_header(0x803, {1024, 1024, 1024}), 256 * k_mib);
    const uint64_t before = peak_rss_bytes();
    EXPECT_THAT(data_error_of([&] { mlp::read_idx_images(p); }),
                AllOf(StartsWith(p + ": "), HasSubstr("truncated"),
                      HasSubstr("needs 1073741824 data bytes, but only 268435440 are present")));
    EXPECT_LT(peak_rss_bytes() - before, 32 * k_mib);
}

TEST(InputLimits, RawHeaderClaimingLessThanTheFileHoldsIsRefusedBeforeReading) {
    TempDir dir;
    const std::string p = sparse_file(dir, "long", mlp::test::idx_header(0x801, {16}), 256 * k_mib);
    const uint64_t before = peak_rss_bytes();
    EXPECT_THAT(data_error_of([&] { mlp::read_idx_labels(p); }),
                AllOf(StartsWith(p + ": "), HasSubstr("trailing bytes after the 16 data bytes")));
    EXPECT_LT(peak_rss_bytes() - before, 32 * k_mib);
}

TEST(InputLimits, RawHeaderClaimingMoreThanTheLimitNamesFileAndLimit) {
    TempDir dir;
    // The file is within the limit; only the header's claim is not.
    const std::string p = dir.write("liar", mlp::test::idx_header(0x803, {2048, 32, 32}));
    EXPECT_THAT(data_error_of([&] { mlp::read_idx_images(p, k_mib); }),
                AllOf(StartsWith(p + ": "), HasSubstr("header claims 2048 x 32 x 32 = 2097152"),
                      HasSubstr("over the size limit of 1048576 bytes")));
}

TEST(InputLimits, GzipHeaderClaimingMoreThanTheLimitIsRefusedOnceDecoded) {
    TempDir dir;
    const std::string p = dir.file("claim.gz");
    mlp::test::write_bytes(
        p, gzip_head_and_zeros(mlp::test::idx_header(0x803, {4096, 32, 32}), 4 * k_mib));
    // Refused for what the header says, not after inflating up to the limit.
    EXPECT_THAT(data_error_of([&] { mlp::read_idx_images(p, k_mib); }),
                AllOf(StartsWith(p + ": "), HasSubstr("header claims 4096 x 32 x 32"),
                      HasSubstr("over the size limit of 1048576 bytes")));
}

TEST(InputLimits, GzipStreamLongerThanItsHeaderStopsInflatingThere) {
    TempDir dir;
    const std::string p = dir.file("bomb.gz");
    // 128 MiB of zeros (about 128 KiB compressed) behind a header that declares 16 bytes.
    mlp::test::write_bytes(
        p, gzip_head_and_zeros(mlp::test::idx_header(0x801, {16}), 16 + 128 * k_mib));
    const uint64_t before = peak_rss_bytes();
    EXPECT_THAT(data_error_of([&] { mlp::read_idx_labels(p); }),
                AllOf(StartsWith(p + ": "), HasSubstr("trailing bytes after the 16 data bytes"),
                      HasSubstr("the gzip stream decompresses to more than 24 bytes")));
    EXPECT_LT(peak_rss_bytes() - before, 32 * k_mib);
    // The same bytes decoded in memory stop at the same point.
    EXPECT_THAT(data_error_of([&] { mlp::decode_idx_labels(mlp::test::read_bytes(p), "mem"); }),
                HasSubstr("trailing bytes after the 16 data bytes"));
}

TEST(InputLimits, DecodeMaybeGzipMatchesTheFileReader) {
    TempDir dir;
    const Bytes data = mlp::test::idx_images_bytes(3, 7, 5);
    const Bytes gz = mlp::test::gzip_bytes(data);
    EXPECT_EQ(mlp::decode_maybe_gzip(gz, "mem"), data);
    EXPECT_EQ(mlp::decode_maybe_gzip(data, "mem"), data);
    EXPECT_THAT(data_error_of([&] { mlp::decode_maybe_gzip(gz, "mem", data.size() - 1); }),
                HasSubstr("mem: gzip stream decompresses to more than the size limit"));
    EXPECT_THAT(data_error_of([&] { mlp::decode_maybe_gzip(data, "mem", data.size() - 1); }),
                HasSubstr("mem: file is 121 bytes, over the size limit of 120 bytes"));
    const mlp::IdxImages img = mlp::decode_idx_images(gz, "mem");
    EXPECT_EQ(img.n_items, 3);
    EXPECT_EQ(img.pixels, Bytes(data.begin() + 16, data.end()));
}

// ---- the command line ----

using mlp::test::CliResult;

CliResult run(std::vector<std::string> args) { return mlp::test::run_mlptrain(std::move(args)); }

TEST(InputLimits, MaxInputMbRefusesLargerDataFiles) {
    TempDir dir;
    // 1100 images of 32 x 32 = 1126400 data bytes: just over 1 MiB.
    mlp::test::write_idx_dataset(mlp::test::synthetic_dataset(1100, 20, 32, 32), dir.path());
    const std::string images = dir.file("train-images-idx3-ubyte");
    const CliResult refused =
        run({"train", "--data", dir.path(), "--device", "cpu", "--max-input-mb", "1"});
    EXPECT_EQ(refused.code, 1) << refused.err;
    EXPECT_THAT(refused.err, AllOf(HasSubstr(images + ": file is 1126416 bytes"),
                                   HasSubstr("over the size limit of 1048576 bytes")));
    const CliResult accepted = run({"train", "--data", dir.path(), "--device", "cpu",
                                    "--max-input-mb", "2", "--epochs", "1", "--hidden", "8"});
    EXPECT_EQ(accepted.code, 0) << accepted.err;
}

TEST(InputLimits, MaxInputMbRefusesLargerModels) {
    TempDir dir;
    mlp::test::write_idx_dataset(mlp::test::synthetic_dataset(20, 20, 28, 28, 10), dir.path());
    const mlp::ModelShape shape({784, 400, 10});  // 318010 floats: about 1.2 MiB
    const std::string model = dir.file("big.safetensors");
    mlp::save_model(model, shape, mlp::init_params(shape, 1), {});
    const CliResult refused = run(
        {"eval", "--model", model, "--data", dir.path(), "--device", "cpu", "--max-input-mb", "1"});
    EXPECT_EQ(refused.code, 1) << refused.err;
    EXPECT_THAT(refused.err, AllOf(HasSubstr(model + ": file is"),
                                   HasSubstr("over the size limit of 1048576 bytes")));
    const CliResult accepted = run(
        {"eval", "--model", model, "--data", dir.path(), "--device", "cpu", "--max-input-mb", "2"});
    EXPECT_EQ(accepted.code, 0) << accepted.err;
}

TEST(InputLimits, MaxInputMbMustBePositive) {
    for (const char* bad : {"0", "-5", "many"}) {
        const CliResult r = run({"train", "--max-input-mb", bad});
        EXPECT_EQ(r.code, 2) << bad;
        EXPECT_THAT(r.err, HasSubstr("--max-input-mb")) << bad;
    }
}

}  // namespace
