// Inference with a saved model on the host: class probabilities for single inputs, for
// `mlptrain predict`. A handful of images (or one test set) needs no GEMM or device, so this is a
// plain forward pass, accumulated in double so that its answer does not depend on BLAS or thread
// count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/model/model.hpp"

namespace mlp {

class Predictor {
public:
    // `path` is used only in messages. Reads from the metadata: input_scale ("1/255" or a
    // number; default 1/255) and input_offset (default 0), so that input = pixel * scale +
    // offset; image_rows / image_cols (default: the square root of the input count); dataset
    // (for class names). Throws DataError naming `path` when a value does not parse.
    Predictor(ModelFile model, std::string path);

    const ModelShape& shape() const { return model_.shape; }
    const std::string& path() const { return path_; }
    const std::string& dataset() const { return dataset_; }

    // The image size a picture is resized to. Throws DataError when the metadata gives none and
    // the input count is not a square.
    int image_rows() const;
    int image_cols() const;

    // Softmax of the logits for one input of shape().n_inputs() pixel values on the 0..255
    // scale of the IDX files.
    std::vector<double> probabilities(const float* pixels) const;
    std::vector<double> probabilities(const uint8_t* pixels) const;

private:
    std::vector<double> forward(std::vector<double> x) const;

    ModelFile model_;
    std::string path_;
    std::string dataset_;
    double scale_ = 1.0 / 255.0;
    double offset_ = 0.0;
    Activation activation_ = Activation::relu;  // the hidden layers' (metadata "activation")
    int rows_ = 0;                              // 0: not known
    int cols_ = 0;
};

// A number in model metadata: "1/255", "0.5" or "-1", the whole text one finite number or a
// quotient of two. Returns false, leaving *value unspecified, for anything else.
bool parse_metadata_number(const std::string& text, double* value);

struct ClassProbability {
    int64_t label = 0;
    double probability = 0.0;
};

// The k most probable classes, most probable first; equal probabilities keep the lower label
// first, as an argmax does.
std::vector<ClassProbability> top_classes(const std::vector<double>& probabilities, int64_t k);

// A readable name for a label of a known data set ("ankle boot" for fashion-mnist 9), or "".
std::string class_name(const std::string& dataset, int64_t label);

}  // namespace mlp
