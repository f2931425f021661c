// What the fuzz targets run on one input, shared with the CPU test that replays the committed
// crash inputs (tests/test_fuzz_regressions.cpp), so a regression fails in the ordinary suite
// too. Each function returns normally when the parsers accept the input or refuse it with
// mlp::Error; any other exception escapes, and a broken invariant aborts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "host/base/error.hpp"
#include "host/data/idx.hpp"
#include "host/formats/safetensors.hpp"

namespace mlp::fuzz {

// Small enough that a gzip bomb hits it quickly, large enough for real 28x28 files.
constexpr uint64_t k_idx_limit_bytes = uint64_t(64) << 20;

template <class Fn>
void parse_or_refuse(Fn&& fn) {
    try {
        fn();
    } catch (const Error&) {
        // Refusing bad input with a message is the correct outcome.
    }
}

// The same bytes through the raw parsers, the generic gzip decoder, and the IDX-aware decoders
// that check a gzip stream's header while inflating.
inline void check_idx_input(const uint8_t* data, size_t size) {
    const std::vector<uint8_t> bytes(data, data + size);
    parse_or_refuse([&] { parse_idx_images(bytes, "fuzz"); });
    parse_or_refuse([&] { parse_idx_labels(bytes, "fuzz"); });
    parse_or_refuse([&] {
        const IdxImages images = decode_idx_images(bytes, "fuzz", k_idx_limit_bytes);
        if (images.pixels.size() != uint64_t(images.n_items) * uint64_t(images.n_features())) {
            std::abort();
        }
    });
    parse_or_refuse([&] {
        const IdxLabels labels = decode_idx_labels(bytes, "fuzz", k_idx_limit_bytes);
        if (labels.labels.size() != uint64_t(labels.n_items)) std::abort();
    });
    parse_or_refuse([&] {
        // The generic decoder's output through the parsers reaches what the IDX-aware decoder
        // refuses early (streams longer than their header says).
        const std::vector<uint8_t> decoded = decode_maybe_gzip(bytes, "fuzz", k_idx_limit_bytes);
        parse_or_refuse([&] { parse_idx_images(decoded, "fuzz"); });
        parse_or_refuse([&] { parse_idx_labels(decoded, "fuzz"); });
    });
}

// A decoded model must match its shape and survive a save and a reload bit for bit (NaN payloads
// included), or a checkpoint could change by being resumed and saved again; so must any tensor
// file the codec accepts without a layout (the training state beside a checkpoint).
inline void check_safetensors_input(const uint8_t* data, size_t size) {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    parse_or_refuse([&] {
        const TensorFile file = decode_safetensors(bytes, "fuzz");
        const TensorFile again = decode_safetensors(encode_safetensors(file), "fuzz re-encoded");
        if (again.metadata != file.metadata || again.tensors.size() != file.tensors.size()) {
            std::abort();
        }
        for (size_t i = 0; i < file.tensors.size(); ++i) {
            const NamedTensor& a = file.tensors[i];
            const NamedTensor& b = again.tensors[i];
            if (a.name != b.name || a.shape != b.shape || a.values.size() != b.values.size() ||
                std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float))) {
                std::abort();
            }
        }
    });
    parse_or_refuse([&] {
        // Non-finite values are refused at load, naming a tensor; that lookup must hold for any
        // model the decoder accepts.
        const ModelFile model = decode_model(bytes, "fuzz");
        check_finite_params(model, "fuzz");
    });
    parse_or_refuse([&] {
        const ModelFile model = decode_model(bytes, "fuzz");
        if (model.params.size() != size_t(model.shape.n_params())) std::abort();
        const std::string again = encode_model(model.shape, model.params, model.metadata);
        const ModelFile reloaded = decode_model(again, "fuzz re-encoded");
        if (reloaded.shape.sizes() != model.shape.sizes() ||
            std::memcmp(reloaded.params.data(), model.params.data(),
                        model.params.size() * sizeof(float)) != 0 ||
            reloaded.metadata != model.metadata) {
            std::abort();
        }
    });
}

}  // namespace mlp::fuzz
