#include "host/model/predict.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <utility>

#include "host/base/error.hpp"

namespace mlp {

bool parse_metadata_number(const std::string& text, double* value) {
    const auto whole = [](const std::string& s, double* v) {
        if (s.empty() || std::isspace(static_cast<unsigned char>(s.front()))) return false;
        size_t used = 0;
        try {
            *v = std::stod(s, &used);
        } catch (const std::exception&) {
            return false;
        }
        return used == s.size() && std::isfinite(*v);
    };
    const size_t slash = text.find('/');
    if (slash == std::string::npos) return whole(text, value);
    double num = 0.0, den = 0.0;
    if (!whole(text.substr(0, slash), &num) || !whole(text.substr(slash + 1), &den) || den == 0.0) {
        return false;
    }
    *value = num / den;
    return true;
}

static int parse_dimension(const std::string& text, const std::string& key,
                           const std::string& path) {
    double v = 0.0;
    if (!parse_metadata_number(text, &v) || v < 1 || v > (1 << 20) || v != std::floor(v)) {
        throw DataError(path, "metadata " + key + " '" + text + "' is not a positive integer");
    }
    return int(v);
}

Predictor::Predictor(ModelFile model, std::string path)
    : model_(std::move(model)), path_(std::move(path)) {
    const auto& meta = model_.metadata;
    const auto get = [&](const char* key) {
        const auto it = meta.find(key);
        return it == meta.end() ? std::string() : it->second;
    };
    dataset_ = get("dataset");
    activation_ = activation_of(meta, path_);
    if (const std::string s = get("input_scale");
        !s.empty() && !parse_metadata_number(s, &scale_)) {
        throw DataError(path_, "metadata input_scale '" + s + "' is not a number or a/b");
    }
    if (const std::string s = get("input_offset");
        !s.empty() && !parse_metadata_number(s, &offset_)) {
        throw DataError(path_, "metadata input_offset '" + s + "' is not a number or a/b");
    }
    const std::string r = get("image_rows");
    const std::string c = get("image_cols");
    if (!r.empty() || !c.empty()) {
        if (r.empty() || c.empty()) {
            throw DataError(path_, "metadata has only one of image_rows and image_cols");
        }
        rows_ = parse_dimension(r, "image_rows", path_);
        cols_ = parse_dimension(c, "image_cols", path_);
        if (int64_t(rows_) * cols_ != model_.shape.n_inputs()) {
            throw DataError(path_, "metadata image_rows x image_cols = " + r + "x" + c +
                                       " does not match the model's " +
                                       std::to_string(model_.shape.n_inputs()) + " inputs");
        }
    } else {
        const int64_t n = model_.shape.n_inputs();
        const auto side = int64_t(std::llround(std::sqrt(double(n))));
        if (side * side == n) rows_ = cols_ = int(side);
    }
}

int Predictor::image_rows() const {
    if (rows_ == 0) {
        throw DataError(path_, "the model takes " + std::to_string(model_.shape.n_inputs()) +
                                   " inputs, which is not a square image, and its metadata "
                                   "has no image_rows/image_cols to say how to shape a picture");
    }
    return rows_;
}

int Predictor::image_cols() const {
    image_rows();  // same check
    return cols_;
}

std::vector<double> Predictor::forward(std::vector<double> x) const {
    const ModelShape& shape = model_.shape;
    const std::vector<float>& p = model_.params;
    for (int l = 0; l < shape.n_layers(); ++l) {
        const int64_t n_in = shape.n_in(l);
        std::vector<double> z(size_t(shape.n_out(l)));
        for (int64_t o = 0; o < shape.n_out(l); ++o) {
            const float* w = &p[size_t(shape.weight_offset(l) + o * n_in)];
            double s = p[size_t(shape.bias_offset(l) + o)];
            for (int64_t i = 0; i < n_in; ++i) s += double(w[i]) * x[size_t(i)];
            z[size_t(o)] = l + 1 < shape.n_layers() ? activate(activation_, s) : s;
        }
        x = std::move(z);
    }
    const double m = *std::max_element(x.begin(), x.end());
    double sum = 0.0;
    for (double& v : x) sum += (v = std::exp(v - m));
    for (double& v : x) v /= sum;
    return x;
}

std::vector<double> Predictor::probabilities(const float* pixels) const {
    std::vector<double> x(size_t(model_.shape.n_inputs()));
    for (size_t i = 0; i < x.size(); ++i) x[i] = double(pixels[i]) * scale_ + offset_;
    return forward(std::move(x));
}

std::vector<double> Predictor::probabilities(const uint8_t* pixels) const {
    std::vector<double> x(size_t(model_.shape.n_inputs()));
    for (size_t i = 0; i < x.size(); ++i) x[i] = double(pixels[i]) * scale_ + offset_;
    return forward(std::move(x));
}

std::vector<ClassProbability> top_classes(const std::vector<double>& probabilities, int64_t k) {
    std::vector<int64_t> order(probabilities.size());
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return probabilities[size_t(a)] > probabilities[size_t(b)];
    });
    order.resize(size_t(std::clamp<int64_t>(k, 0, int64_t(order.size()))));
    std::vector<ClassProbability> top;
    for (int64_t label : order) top.push_back({label, probabilities[size_t(label)]});
    return top;
}

std::string class_name(const std::string& dataset, int64_t label) {
    // Zalando's names for the ten Fashion-MNIST classes, in label order.
    static const char* const k_fashion[] = {"T-shirt/top", "trouser",   "pullover", "dress",
                                            "coat",        "sandal",    "shirt",    "sneaker",
                                            "bag",         "ankle boot"};
    if (dataset == "fashion-mnist" && label >= 0 && label < 10) return k_fashion[label];
    return "";
}

}  // namespace mlp
