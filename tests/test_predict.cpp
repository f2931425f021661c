// Inference with a saved model (host/model/predict.hpp) and `mlptrain predict`: probabilities against
// the reference network, metadata handling, top-k, and pictures of test samples (upscaled,
// inverted, in several PNG flavours) classified as the samples themselves are.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include "cli_runner.hpp"
#include "host/base/error.hpp"
#include "host/cli/cli.hpp"
#include "host/formats/safetensors.hpp"
#include "host/model/predict.hpp"
#include "png_writer.hpp"
#include "reference_mlp.hpp"
#include "synthetic.hpp"
#include "temp_dir.hpp"

namespace mlp {
namespace {

using ::testing::HasSubstr;

ModelFile small_model(std::map<std::string, std::string> metadata = {}) {
    ModelFile m;
    m.shape = ModelShape({4, 3, 2});
    m.params = init_params(m.shape, 7);
    for (size_t i = 0; i < m.params.size(); ++i) m.params[i] += 0.01f * float(i % 5);
    m.metadata = std::move(metadata);
    return m;
}

TEST(Predictor, ProbabilitiesAreTheSoftmaxOfTheReferenceLogits) {
    const ModelFile m = small_model();
    const Predictor p(m, "m.safetensors");
    test::ReferenceMlp ref{m.shape, std::vector<double>(m.params.begin(), m.params.end())};
    const uint8_t pixels[4] = {0, 60, 200, 255};
    std::vector<double> x;
    for (uint8_t v : pixels) x.push_back(v / 255.0);
    const auto logits = ref.forward(x).back();
    const double norm = std::exp(logits[0]) + std::exp(logits[1]);
    const auto probs = p.probabilities(pixels);
    ASSERT_EQ(probs.size(), 2u);
    EXPECT_NEAR(probs[0], std::exp(logits[0]) / norm, 1e-9);
    EXPECT_NEAR(probs[1], std::exp(logits[1]) / norm, 1e-9);
    const float fpixels[4] = {0, 60, 200, 255};
    EXPECT_EQ(p.probabilities(fpixels), probs);
}

TEST(Predictor, HonoursInputScaleAndOffset) {
    const Predictor plain(small_model(), "a");
    const Predictor scaled(small_model({{"input_scale", "2/255"}, {"input_offset", "-1"}}), "b");
    const uint8_t pixels[4] = {10, 20, 30, 40};
    const float same[4] = {2 * 10 - 255, 2 * 20 - 255, 2 * 30 - 255, 2 * 40 - 255};
    const auto a = scaled.probabilities(pixels);
    const auto b = plain.probabilities(same);
    EXPECT_NEAR(a[0], b[0], 1e-12);
}

TEST(Predictor, ImageShapeFromMetadataOrSquareRoot) {
    const Predictor square(small_model(), "sq");
    EXPECT_EQ(square.image_rows(), 2);
    EXPECT_EQ(square.image_cols(), 2);
    const Predictor wide(small_model({{"image_rows", "1"}, {"image_cols", "4"}}), "w");
    EXPECT_EQ(wide.image_rows(), 1);
    EXPECT_EQ(wide.image_cols(), 4);

    ModelFile odd = small_model();
    odd.shape = ModelShape({6, 2});
    odd.params.assign(size_t(odd.shape.n_params()), 0.0f);
    const Predictor no_shape(odd, "odd.safetensors");
    try {
        no_shape.image_rows();
        FAIL() << "no error";
    } catch (const DataError& e) {
        EXPECT_THAT(e.what(), HasSubstr("odd.safetensors"));
        EXPECT_THAT(e.what(), HasSubstr("image_rows"));
    }
}

TEST(Predictor, BadMetadataNamesTheFileAndKey) {
    const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
        {{{"input_scale", "one"}}, "input_scale"},
        {{{"input_scale", "1/0"}}, "input_scale"},
        {{{"input_offset", "1x"}}, "input_offset"},
        {{{"image_rows", "2"}}, "image_cols"},
        {{{"image_rows", "2"}, {"image_cols", "3"}}, "does not match"},
        {{{"image_rows", "-2"}, {"image_cols", "-2"}}, "image_rows"},
    };
    for (const auto& [meta, expect] : cases) {
        try {
            Predictor p(small_model(meta), "bad.safetensors");
            ADD_FAILURE() << "no error for " << expect;
        } catch (const DataError& e) {
            EXPECT_THAT(e.what(), HasSubstr("bad.safetensors"));
            EXPECT_THAT(e.what(), HasSubstr(expect));
        }
    }
}

TEST(TopClasses, SortedWithTiesToTheLowerLabel) {
    const auto top = top_classes({0.1, 0.3, 0.3, 0.05, 0.25}, 3);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].label, 1);
    EXPECT_EQ(top[1].label, 2);
    EXPECT_EQ(top[2].label, 4);
    EXPECT_DOUBLE_EQ(top[2].probability, 0.25);
    EXPECT_EQ(top_classes({0.5, 0.5}, 10).size(), 2u);
    EXPECT_EQ(class_name("fashion-mnist", 9), "ankle boot");
    EXPECT_EQ(class_name("mnist", 9), "");
}

// ------------------------------------------------------------------ the predict command

using test::CliResult;

CliResult run(std::vector<std::string> args) { return test::run_mlptrain(std::move(args)); }

constexpr int k_side = 8;
constexpr int k_classes = 3;

// Synthetic 8x8 samples with a black frame, like MNIST's empty margins, so that their pictures
// have a definite background.
Dataset framed_dataset() {
    Dataset d = test::synthetic_dataset(300, 60, k_side, k_side, k_classes);
    for (Split* s : {&d.train, &d.test}) {
        for (int64_t i = 0; i < s->size(); ++i) {
            for (int r = 0; r < k_side; ++r) {
                for (int c = 0; c < k_side; ++c) {
                    if (r == 0 || c == 0 || r == k_side - 1 || c == k_side - 1) {
                        s->images.pixels[size_t(i * k_side * k_side + r * k_side + c)] = 0;
                    }
                }
            }
        }
    }
    return d;
}

class Predict : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = test::make_temp_dir("mlptrain_predict");
        data_ = new Dataset(framed_dataset());
        test::write_idx_dataset(*data_, (dir_ / "data").string());
        const auto t =
            run({"train", "--data", (dir_ / "data").string(), "--device", "cpu", "--epochs", "3",
                 "--hidden", "16", "--batch-size", "16", "--save-model", model()});
        ASSERT_EQ(t.code, 0) << t.err;
    }
    static void TearDownTestSuite() {
        std::filesystem::remove_all(dir_);
        delete data_;
    }
    static std::string model() { return (dir_ / "m.safetensors").string(); }
    static std::string test_images() { return (dir_ / "data" / "t10k-images-idx3-ubyte").string(); }
    static std::string path(const std::string& name) { return (dir_ / name).string(); }
    static void write(const std::string& name, const std::string& bytes) {
        std::ofstream(path(name), std::ios::binary) << bytes;
    }
    // Test sample i, scaled up 4x (nearest) and inverted: dark strokes on white.
    static std::vector<uint16_t> picture(int64_t i, int channels, int max_value) {
        std::vector<uint16_t> s;
        const int big = 4 * k_side;
        for (int r = 0; r < big; ++r) {
            for (int c = 0; c < big; ++c) {
                const int v = data_->test.images
                                  .pixels[size_t(i * k_side * k_side + (r / 4) * k_side + c / 4)];
                const auto inv = uint16_t((255 - v) * (max_value / 255));
                for (int ch = 0; ch < channels; ++ch) s.push_back(ch == 3 ? max_value : inv);
            }
        }
        return s;
    }

    static std::filesystem::path dir_;
    static Dataset* data_;
};

std::filesystem::path Predict::dir_;
Dataset* Predict::data_ = nullptr;

TEST_F(Predict, PicturesOfTestSamplesAreClassifiedAsTheSamples) {
    const int big = 4 * k_side;
    // One picture per class, each in another PNG flavour.
    write("s0.png", test::encode_png(big, big, test::k_png_rgb, 8, picture(0, 3, 255)));
    write("s1.png", test::encode_png(big, big, test::k_png_gray, 16, picture(1, 1, 65535)));
    write("s2.png", test::encode_png(big, big, test::k_png_rgba, 8, picture(2, 4, 255)));
    const auto r = run({"predict", "--model", model(), path("s0.png"), path("s1.png"),
                        path("s2.png"), "--json", "--top-k", "3"});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto pics = nlohmann::json::parse(r.out);
    ASSERT_EQ(pics.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        const auto& pic = pics[size_t(i)];
        EXPECT_EQ(pic.at("file").get<std::string>(), path("s" + std::to_string(i) + ".png"));
        EXPECT_TRUE(pic.at("inverted").get<bool>());
        ASSERT_EQ(pic.at("top").size(), 3u);
        EXPECT_EQ(pic.at("top")[0].at("class").get<int>(), data_->test.labels.labels[size_t(i)])
            << r.out;

        // The same sample straight from the IDX file: same classes and probabilities.
        const auto s = run({"predict", "--model", model(), "--idx", test_images(), "--index",
                            std::to_string(i), "--json", "--top-k", "3"});
        ASSERT_EQ(s.code, 0) << s.err;
        const auto idx = nlohmann::json::parse(s.out).at(0);
        EXPECT_EQ(idx.at("index").get<int>(), i);
        for (int k = 0; k < 3; ++k) {
            EXPECT_EQ(pic.at("top")[size_t(k)].at("class"), idx.at("top")[size_t(k)].at("class"));
            EXPECT_NEAR(pic.at("top")[size_t(k)].at("probability").get<double>(),
                        idx.at("top")[size_t(k)].at("probability").get<double>(), 1e-5);
        }
    }

    // Text form: a header naming the picture and what was done to it, then the classes.
    const auto t = run({"predict", "--model", model(), path("s0.png")});
    ASSERT_EQ(t.code, 0) << t.err;
    EXPECT_THAT(t.out, HasSubstr(path("s0.png") + " (32x32 RGB -> 8x8, inverted"));
    EXPECT_EQ(std::count(t.out.begin(), t.out.end(), '\n'), 1 + 3) << t.out;
    EXPECT_THAT(t.out, HasSubstr("%"));

    // Without inversion the picture is a negative the model never saw; --invert no must
    // really leave it alone.
    const auto n = run({"predict", "--model", model(), path("s0.png"), "--invert", "no", "--json"});
    ASSERT_EQ(n.code, 0) << n.err;
    EXPECT_FALSE(nlohmann::json::parse(n.out).at(0).at("inverted").get<bool>());
}

TEST_F(Predict, AllSamplesAgreeWithEval) {
    const auto a = run({"predict", "--model", model(), "--idx", test_images(), "--all"});
    ASSERT_EQ(a.code, 0) << a.err;
    std::istringstream lines(a.out);
    int64_t n = 0, correct = 0;
    std::vector<std::vector<int64_t>> confusion(k_classes, std::vector<int64_t>(k_classes, 0));
    for (std::string l; std::getline(lines, l); ++n) {
        const int label = data_->test.labels.labels[size_t(n)];
        correct += std::stoi(l) == label;
        confusion[size_t(label)][size_t(std::stoi(l))] += 1;
    }
    EXPECT_EQ(n, 60);
    EXPECT_GT(correct, 50);

    // eval runs the training engine, predict a separate host forward pass: same answers, and
    // eval's summary figures are consistent with its confusion matrix.
    const auto e = run({"eval", "--model", model(), "--data", (dir_ / "data").string(), "--device",
                        "cpu", "--json"});
    ASSERT_EQ(e.code, 0) << e.err;
    const auto report = nlohmann::json::parse(e.out);
    EXPECT_DOUBLE_EQ(report.at("test_accuracy").get<double>(), double(correct) / 60.0);
    EXPECT_EQ(report.at("confusion_matrix").get<std::vector<std::vector<int64_t>>>(), confusion);
    const auto per_class = report.at("per_class_accuracy").get<std::vector<double>>();
    ASSERT_EQ(per_class.size(), size_t(k_classes));
    for (int c = 0; c < k_classes; ++c) {
        const int64_t total =
            std::accumulate(confusion[size_t(c)].begin(), confusion[size_t(c)].end(), int64_t(0));
        EXPECT_EQ(total, 20);  // the synthetic labels cycle through the classes
        EXPECT_DOUBLE_EQ(per_class[size_t(c)],
                         double(confusion[size_t(c)][size_t(c)]) / double(total));
    }
    EXPECT_GT(report.at("test_loss").get<double>(), 0.0);
    const auto text =
        run({"eval", "--model", model(), "--data", (dir_ / "data").string(), "--device", "cpu"});
    ASSERT_EQ(text.code, 0) << text.err;
    EXPECT_THAT(text.out, HasSubstr("per-class accuracy:"));
    char row[64];
    std::snprintf(row, sizeof row, "%6lld%6lld%6lld", (long long)confusion[1][0],
                  (long long)confusion[1][1], (long long)confusion[1][2]);
    EXPECT_THAT(text.out, HasSubstr(std::string(row) + "\n"));

    const auto j = run(
        {"predict", "--model", model(), "--idx", test_images(), "--all", "--json", "--top-k", "1"});
    ASSERT_EQ(j.code, 0) << j.err;
    const auto parsed = nlohmann::json::parse(j.out);
    ASSERT_EQ(parsed.size(), 60u);
    EXPECT_EQ(parsed[59].at("index").get<int>(), 59);
    EXPECT_EQ(parsed[59].at("top").size(), 1u);
}

TEST_F(Predict, UsageErrorsExitWithTwo) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"predict", "x.png"}, "--model"},
        {{"predict", "--model", model()}, "nothing to classify"},
        {{"predict", "--model", model(), "--index", "3"}, "--idx"},
        {{"predict", "--model", model(), "--idx", test_images()}, "--index N or --all"},
        {{"predict", "--model", model(), "--idx", test_images(), "--all", "--index", "1"}, "--all"},
        {{"predict", "--model", model(), "a.png", "--idx", test_images(), "--all"}, "not both"},
        {{"predict", "--model", model(), "a.png", "--top-k", "0"}, "--top-k"},
        {{"predict", "--model", model(), "a.png", "--invert", "maybe"}, "--invert"},
    };
    for (const auto& [args, expect] : cases) {
        const auto r = run(args);
        EXPECT_EQ(r.code, 2) << expect;
        EXPECT_THAT(r.err, HasSubstr(expect));
    }
    const auto h = run({"predict", "--help"});
    EXPECT_EQ(h.code, 0);
    EXPECT_THAT(h.out, HasSubstr("--top-k"));
}

TEST_F(Predict, RuntimeErrorsNameTheFile) {
    const auto range =
        run({"predict", "--model", model(), "--idx", test_images(), "--index", "60"});
    EXPECT_EQ(range.code, 1);
    EXPECT_THAT(range.err, HasSubstr(test_images()));
    EXPECT_THAT(range.err, HasSubstr("--index 60 is out of range"));

    const auto missing = run({"predict", "--model", model(), path("none.png")});
    EXPECT_EQ(missing.code, 1);
    EXPECT_THAT(missing.err, HasSubstr(path("none.png")));

    write("text.png", "hello");
    const auto text = run({"predict", "--model", model(), path("text.png")});
    EXPECT_EQ(text.code, 1);
    EXPECT_THAT(text.err, HasSubstr(path("text.png") + ": not a PNG file"));

    // A 4x5 data set against the 8x8 model.
    test::write_idx_dataset(test::synthetic_dataset(10, 10, 4, 5, 3), path("small"));
    const auto size = run({"predict", "--model", model(), "--idx",
                           path("small") + "/t10k-images-idx3-ubyte", "--index", "0"});
    EXPECT_EQ(size.code, 1);
    EXPECT_THAT(size.err, HasSubstr("4x5 (20 values)"));
    EXPECT_THAT(size.err, HasSubstr("takes 64 inputs"));

    const auto no_model = run({"predict", "--model", path("nope.safetensors"), path("s.png")});
    EXPECT_EQ(no_model.code, 1);
    EXPECT_THAT(no_model.err, HasSubstr(path("nope.safetensors")));
}

// A NaN weight used to give eval a plausible accuracy and predict nan% for every class; an
// image passed as the model used to report an absurd header length.
TEST_F(Predict, NonFiniteOrForeignModelsAreRefusedByEvalAndPredict) {
    ModelFile m = load_model(model());
    m.params[size_t(m.shape.weight_offset(1) + 2 * m.shape.n_in(1) + 5)] =
        std::numeric_limits<float>::quiet_NaN();
    save_model(path("nan.safetensors"), m.shape, m.params, m.metadata);
    const auto eval = run({"eval", "--model", path("nan.safetensors"), "--data",
                           (dir_ / "data").string(), "--device", "cpu"});
    EXPECT_EQ(eval.code, 1);
    EXPECT_THAT(eval.err, HasSubstr(path("nan.safetensors") +
                                    ": tensor \"2.weight\" holds NaN at [2, 5] (row 2, column 5)"));
    const auto predict = run(
        {"predict", "--model", path("nan.safetensors"), "--idx", test_images(), "--index", "0"});
    EXPECT_EQ(predict.code, 1);
    EXPECT_THAT(predict.err, HasSubstr("tensor \"2.weight\" holds NaN"));

    write("picture.png", test::encode_png(1, 1, test::k_png_gray, 8, {128}));
    const auto png = run({"eval", "--model", path("picture.png"), "--data",
                          (dir_ / "data").string(), "--device", "cpu"});
    EXPECT_EQ(png.code, 1);
    EXPECT_THAT(png.err, HasSubstr(path("picture.png") +
                                   ": not a safetensors file: it looks like a PNG image"));
}

}  // namespace
}  // namespace mlp
