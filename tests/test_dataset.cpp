// Data set loading: both file-name spellings, raw and gzip, the cross-file checks, and the
// lookup order of named data sets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "host/base/error.hpp"
#include "host/data/dataset.hpp"
#include "tests/idx_fixtures.hpp"

namespace {

using mlp::test::DatasetFiles;
using mlp::test::TempDir;
using testing::AllOf;
using testing::HasSubstr;
using testing::StartsWith;

std::string load_error(const std::string& dir) {
    try {
        mlp::load_dataset(dir, "test");
    } catch (const mlp::DataError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected mlp::DataError from load_dataset(" << dir << ")";
    return "";
}

void expect_tiny_dataset(const mlp::Dataset& d, const std::string& dir) {
    EXPECT_EQ(d.name, "test");
    EXPECT_EQ(d.dir, dir);
    EXPECT_EQ(d.n_classes, 4);
    EXPECT_EQ(d.n_features(), 15);
    EXPECT_EQ(d.train.size(), 6);
    EXPECT_EQ(d.test.size(), 3);
    EXPECT_EQ(d.train.images.n_rows, 5);
    EXPECT_EQ(d.train.images.n_cols, 3);
    EXPECT_EQ(d.train.labels.labels, (std::vector<uint8_t>{0, 1, 2, 3, 1, 0}));
    EXPECT_EQ(d.test.labels.labels, (std::vector<uint8_t>{3, 2, 0}));
    EXPECT_EQ(d.test.images.pixels[15 + 3 * 2 + 1], mlp::test::fixture_pixel(1, 2, 1));
}

TEST(Dataset, LoadsRawFiles) {
    TempDir dir;
    DatasetFiles{}.write_to(dir);
    expect_tiny_dataset(mlp::load_dataset(dir.path(), "test"), dir.path());
}

TEST(Dataset, LoadsGzipFiles) {
    TempDir dir;
    DatasetFiles f;
    f.gzip = true;
    f.write_to(dir);
    ASSERT_TRUE(std::filesystem::exists(dir.file("train-images-idx3-ubyte.gz")));
    expect_tiny_dataset(mlp::load_dataset(dir.path(), "test"), dir.path());
}

TEST(Dataset, LoadsDottedSpellingRawAndGzip) {
    for (bool gzip : {false, true}) {
        TempDir dir;
        DatasetFiles f;
        f.dotted = true;
        f.gzip = gzip;
        f.write_to(dir);
        ASSERT_TRUE(std::filesystem::exists(dir.file(gzip ? "t10k-labels.idx1-ubyte.gz"
                                                           : "t10k-labels.idx1-ubyte")));
        expect_tiny_dataset(mlp::load_dataset(dir.path(), "test"), dir.path());
    }
}

TEST(Dataset, NonSquareImagesOfAnySize) {
    TempDir dir;
    DatasetFiles f;
    f.rows = f.test_rows = 2;
    f.cols = f.test_cols = 11;
    f.write_to(dir);
    mlp::Dataset d = mlp::load_dataset(dir.path(), "test");
    EXPECT_EQ(d.n_features(), 22);
    EXPECT_EQ(d.train.images.pixels.size(), 6u * 22u);
}

mlp::LoadOptions with_classes(int64_t n_classes) {
    mlp::LoadOptions options;
    options.n_classes = n_classes;
    return options;
}

std::string load_error(const std::string& dir, const mlp::LoadOptions& options) {
    try {
        mlp::load_dataset(dir, "test", options);
    } catch (const mlp::DataError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected mlp::DataError from load_dataset(" << dir << ")";
    return "";
}

TEST(Dataset, ClassCountIsMaxTrainingLabelPlusOne) {
    TempDir dir;
    DatasetFiles f;
    f.train_labels = {0, 4, 1, 3, 2, 2};
    f.test_labels = {4, 0, 1};
    f.write_to(dir);
    EXPECT_EQ(mlp::load_dataset(dir.path(), "test").n_classes, 5);
}

// One stray label must not widen the model to 201 outputs without a word.
TEST(DatasetDefect, ClassRangeWithEmptyClassesNamesTheLabelFileAndFirstIndex) {
    TempDir dir;
    DatasetFiles f;
    f.train_labels = {0, 1, 2, 3, 200, 200};
    f.write_to(dir);
    const std::string labels = dir.file("train-labels-idx1-ubyte");
    EXPECT_THAT(
        load_error(dir.path()),
        AllOf(StartsWith(labels + ": "), HasSubstr("item 4 has label 200"),
              HasSubstr("no sample has a label in 4..199"), HasSubstr("give --classes 201")));

    f.train_labels = {0, 7, 0, 7, 2, 2};  // 1 and 3..6 unused: the first gap is named
    f.write_to(dir);
    EXPECT_THAT(load_error(dir.path()),
                AllOf(StartsWith(labels + ": "), HasSubstr("item 4 has label 2"),
                      HasSubstr("no sample has label 1:")));
}

TEST(Dataset, ExplicitClassCountAllowsUnusedClasses) {
    TempDir dir;
    DatasetFiles f;
    f.train_labels = {0, 7, 0, 7, 2, 2};
    f.test_labels = {7, 0, 1};
    f.write_to(dir);
    EXPECT_EQ(mlp::load_dataset(dir.path(), "test", with_classes(8)).n_classes, 8);
    EXPECT_EQ(mlp::load_dataset(dir.path(), "test", with_classes(20)).n_classes, 20);
}

TEST(DatasetDefect, ExplicitClassCountRefusesLabelsAtOrAboveIt) {
    TempDir dir;
    DatasetFiles f;
    f.train_labels = {0, 1, 2, 3, 1, 0};
    f.test_labels = {3, 2, 0};
    f.write_to(dir);
    EXPECT_THAT(load_error(dir.path(), with_classes(3)),
                AllOf(StartsWith(dir.file("train-labels-idx1-ubyte") + ": "),
                      HasSubstr("item 3 has label 3"), HasSubstr("--classes gives 3 classes")));
    f.train_labels = {0, 1, 2, 2, 1, 0};
    f.write_to(dir);
    EXPECT_THAT(load_error(dir.path(), with_classes(3)),
                AllOf(StartsWith(dir.file("t10k-labels-idx1-ubyte") + ": "),
                      HasSubstr("item 0 has label 3"), HasSubstr("--classes gives 3 classes")));
}

TEST(Dataset, TestOnlyReadsNoTrainingFiles) {
    TempDir dir;
    DatasetFiles{}.write_to(dir);
    std::filesystem::remove(dir.file("train-images-idx3-ubyte"));
    std::filesystem::remove(dir.file("train-labels-idx1-ubyte"));
    EXPECT_FALSE(mlp::has_dataset_files(dir.path()));
    EXPECT_TRUE(mlp::has_dataset_files(dir.path(), /*test_only=*/true));
    mlp::LoadOptions options = with_classes(10);
    options.test_only = true;
    const mlp::Dataset d = mlp::load_dataset(dir.path(), "test", options);
    EXPECT_EQ(d.train.size(), 0);
    EXPECT_EQ(d.test.size(), 3);
    EXPECT_EQ(d.n_features(), 15);
    EXPECT_EQ(d.n_classes, 10);
    EXPECT_EQ(d.test.labels.labels, (std::vector<uint8_t>{3, 2, 0}));

    options.n_classes = 3;
    options.classes_from = "the model";
    EXPECT_THAT(load_error(dir.path(), options),
                AllOf(StartsWith(dir.file("t10k-labels-idx1-ubyte") + ": "),
                      HasSubstr("item 0 has label 3"), HasSubstr("the model gives 3 classes")));
}

TEST(Dataset, GzFallbackForASingleFile) {
    TempDir dir;
    DatasetFiles f;
    f.gzip = true;
    f.write_to(dir);
    const std::string raw = dir.file("t10k-images-idx3-ubyte");
    EXPECT_EQ(mlp::with_gz_fallback(raw), raw + ".gz");
    EXPECT_EQ(mlp::with_gz_fallback(raw + ".gz"), raw + ".gz");
    EXPECT_EQ(mlp::with_gz_fallback(dir.file("nothing")), dir.file("nothing"));
    DatasetFiles{}.write_to(dir);  // both present: the name given wins
    EXPECT_EQ(mlp::with_gz_fallback(raw), raw);
}

TEST(Dataset, HasDatasetFiles) {
    TempDir dir;
    EXPECT_FALSE(mlp::has_dataset_files(dir.path()));
    EXPECT_FALSE(mlp::has_dataset_files(dir.file("does-not-exist")));
    DatasetFiles{}.write_to(dir);
    EXPECT_TRUE(mlp::has_dataset_files(dir.path()));
    std::filesystem::remove(dir.file("train-labels-idx1-ubyte"));
    EXPECT_FALSE(mlp::has_dataset_files(dir.path()));
}

// ---- cross-file defects ----

TEST(DatasetDefect, MissingFileNamesFolderAndFile) {
    TempDir dir;
    DatasetFiles{}.write_to(dir);
    std::filesystem::remove(dir.file("t10k-labels-idx1-ubyte"));
    EXPECT_THAT(load_error(dir.path()),
                AllOf(StartsWith(dir.path() + ": "), HasSubstr("missing t10k-labels-idx1-ubyte"),
                      HasSubstr("t10k-labels.idx1-ubyte")));
}

TEST(DatasetDefect, MissingFolder) {
    TempDir dir;
    std::string nowhere = dir.file("nowhere");
    EXPECT_THAT(load_error(nowhere), AllOf(StartsWith(nowhere + ": "),
                                           HasSubstr("missing train-images-idx3-ubyte")));
}

TEST(DatasetDefect, TrainCountMismatchNamesBothFilesAndCounts) {
    TempDir dir;
    DatasetFiles f;
    f.train_labels = {0, 1, 2, 3, 1};  // 5 labels for 6 images
    f.write_to(dir);
    std::string labels = dir.file("train-labels-idx1-ubyte");
    std::string images = dir.file("train-images-idx3-ubyte");
    EXPECT_THAT(load_error(dir.path()),
                AllOf(StartsWith(labels + ": "), HasSubstr("train split"),
                      HasSubstr("5 labels"), HasSubstr(images + " holds 6 images")));
}

TEST(DatasetDefect, TestCountMismatchNamesBothFilesAndCounts) {
    TempDir dir;
    DatasetFiles f;
    f.gzip = true;
    f.test_images = 4;  // 4 images for 3 labels
    f.write_to(dir);
    std::string labels = dir.file("t10k-labels-idx1-ubyte.gz");
    std::string images = dir.file("t10k-images-idx3-ubyte.gz");
    EXPECT_THAT(load_error(dir.path()),
                AllOf(StartsWith(labels + ": "), HasSubstr("test split"),
                      HasSubstr("3 labels"), HasSubstr(images + " holds 4 images")));
}

TEST(DatasetDefect, TrainAndTestImageSizesDiffer) {
    TempDir dir;
    DatasetFiles f;
    f.test_rows = 4;
    f.test_cols = 4;
    f.write_to(dir);
    std::string test_images = dir.file("t10k-images-idx3-ubyte");
    EXPECT_THAT(load_error(dir.path()),
                AllOf(StartsWith(test_images + ": "), HasSubstr("test images are 4x4"),
                      HasSubstr(dir.file("train-images-idx3-ubyte") + " are 5x3")));
}

TEST(DatasetDefect, TestLabelOutOfRange) {
    TempDir dir;
    DatasetFiles f;
    f.test_labels = {1, 9, 0};  // training labels only reach 3
    f.write_to(dir);
    std::string test_labels = dir.file("t10k-labels-idx1-ubyte");
    EXPECT_THAT(load_error(dir.path()),
                AllOf(StartsWith(test_labels + ": "),
                      HasSubstr("label out of range: item 1 has label 9"),
                      HasSubstr("4 classes")));
}

TEST(DatasetDefect, BrokenFileIsNamed) {
    TempDir dir;
    DatasetFiles{}.write_to(dir);
    std::string p = dir.file("train-images-idx3-ubyte");
    mlp::test::write_bytes(p, mlp::test::idx_header(0x12345678, {1, 1, 1}));
    EXPECT_THAT(load_error(dir.path()),
                AllOf(StartsWith(p + ": "), HasSubstr("wrong magic number 0x12345678")));
}

// ---- named data sets ----

TEST(FindDataset, KnownNames) {
    EXPECT_THAT(mlp::known_datasets(), testing::ElementsAre("mnist", "fashion-mnist"));
}

TEST(FindDataset, ProjectFolderComesFirst) {
    TempDir dir;
    DatasetFiles{}.write_to(dir, "fashion-mnist");
    DatasetFiles{}.write_to(dir, "mnist");
    EXPECT_EQ(mlp::find_dataset_dir("fashion-mnist", dir.path()), dir.path() + "/fashion-mnist");
    EXPECT_EQ(mlp::find_dataset_dir("mnist", dir.path()), dir.path() + "/mnist");
}

TEST(FindDataset, IncompleteProjectFolderFallsThroughToSystemFolder) {
    TempDir dir;
    DatasetFiles{}.write_to(dir, "fashion-mnist");
    std::filesystem::remove(dir.file("fashion-mnist/t10k-images-idx3-ubyte"));
    for (const std::string& name : mlp::known_datasets()) {
        // The system folder depends on the machine (Debian's dataset-fashion-mnist package).
        std::string system = "/usr/share/datasets/" + name;
        std::string expected = mlp::has_dataset_files(system) ? system : "";
        EXPECT_EQ(mlp::find_dataset_dir(name, dir.path()), expected) << name;
    }
}

TEST(FindDataset, UnknownNameListsKnownOnes) {
    try {
        mlp::find_dataset_dir("cifar10", "data");
        FAIL() << "expected mlp::UsageError";
    } catch (const mlp::UsageError& e) {
        EXPECT_EQ(e.flag(), "--dataset");
        EXPECT_THAT(std::string(e.what()),
                    AllOf(HasSubstr("unknown data set 'cifar10'"), HasSubstr("mnist"),
                          HasSubstr("fashion-mnist")));
    }
}

TEST(FindDataset, TestOnlyLookupNeedsOnlyTheTestFiles) {
    TempDir dir;
    DatasetFiles{}.write_to(dir, "mnist");
    std::filesystem::remove(dir.file("mnist/train-images-idx3-ubyte"));
    EXPECT_EQ(mlp::find_dataset_dir("mnist", dir.path(), /*test_only=*/true),
              dir.path() + "/mnist");
}

}  // namespace
