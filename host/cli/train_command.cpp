#include "host/cli/commands.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>

#include "host/data/data_source.hpp"
#include "host/formats/checkpoint.hpp"
#include "host/formats/run_metadata.hpp"
#include "host/device/device.hpp"
#include "host/train/interrupt.hpp"
#include "host/train/report.hpp"
#include "host/train/train_loop.hpp"

namespace mlp {

CLI::App* add_train_command(CLI::App& app, TrainCommand& command) {
    CLI::App* cmd = app.add_subcommand("train", "train a model");
    TrainConfig& t = command.config;
    add_training_flags(cmd, t, command.flags);
    cmd->add_option("--log-interval", t.log_interval,
                    "print the running loss every N steps (0: off; disables graph replay)")
        ->capture_default_str();
    cmd->add_option("--metrics", t.metrics_path, "write one JSON object per epoch");
    cmd->add_option("--save-model", t.save_model_path, "write the trained model (safetensors)");
    cmd->add_option("--checkpoint", t.checkpoint_path,
                    "resumable checkpoint: the model, and the optimizer state beside it "
                    "(NAME.state.safetensors); written after the last epoch and every "
                    "--checkpoint-every epochs");
    cmd->add_option("--checkpoint-every", t.checkpoint_every,
                    "epochs between checkpoints (0: after the last only) [path: --checkpoint, "
                    "else --save-model, else checkpoint.safetensors]");
    cmd->add_option("--resume", t.resume_path,
                    "continue the run whose --checkpoint is PATH, bit for bit, with its "
                    "training flags; flags given must match them (except --epochs, the device "
                    "and the outputs)");
    cmd->parse_complete_callback([cmd, &command] {
        command.given = given_flags(cmd);
        // A resumed run's flags are the checkpoint's: the checks across flags (--beta1 is for
        // adam) can only run once it is read.
        if (command.given.count("--resume")) {
            convert_training_flags(command.config, command.flags);
        } else {
            finish_training_flags(cmd, command.config, command.flags);
        }
    });
    return cmd;
}

static std::string describe_training(const TrainConfig& t) {
    std::ostringstream s;
    const OptimizerConfig& o = t.optimizer;
    s << "optimizer: " << to_string(o.kind);
    if (o.momentum != 0.0) s << " momentum " << o.momentum << (o.nesterov ? " nesterov" : "");
    if (o.kind != OptimizerKind::sgd) s << " betas " << o.beta1 << "," << o.beta2;
    if (o.weight_decay != 0.0) s << " weight_decay " << o.weight_decay;
    s << ", schedule " << to_string(t.schedule.kind);
    if (schedule_depends_on_epochs(t.schedule.kind)) s << " over " << t.span_epochs() << " epochs";
    if (t.augment_shift > 0) s << ", random shifts up to " << t.augment_shift << " px";
    return s.str();
}

// The configuration a --resume run trains with: the checkpoint's training flags, the given
// ones checked against them, the defaults that depend on other flags, then the value checks.
static TrainConfig resumed_config(const TrainCommand& command) {
    const TrainConfig& parsed = command.config;
    TrainConfig config =
        resume_config(checkpoint_metadata(parsed.resume_path, parsed.data.max_input_bytes()),
                      parsed, command.given, parsed.resume_path);
    // The weight decay is the checkpoint's, whichever optimizer default applies now.
    GivenFlags fixed = command.given;
    fixed.insert("--weight-decay");
    resolve_train_defaults(config, fixed);
    check_train_config(config);
    return config;
}

int run_train(const TrainCommand& command, std::ostream& out) {
    const TrainConfig config =
        command.config.resume_path.empty() ? command.config : resumed_config(command);
    const DeviceChoice device = choose_device(config.device);
    std::string where;
    const Dataset data = open_dataset(config.data, &where);
    const ModelShape shape(data.n_features(), config.hidden, data.n_classes);

    const TrainerOptions options = trainer_options(config, device.cuda);
    auto trainer = make_trainer(device, shape, data, options);
    trainer->set_params(init_params(shape, config.seed));

    print_device(out, *trainer, device);
    out << "data: " << data.name << " from " << where << " (" << data.train.size() << " train, "
        << data.test.size() << " test, " << data.train.images.n_rows << "x"
        << data.train.images.n_cols << ", " << data.n_classes << " classes)\n"
        << "model: " << shape.to_string() << " (" << shape.n_params() << " parameters), "
        << "batch " << config.batch_size << ", lr " << config.lr << ", seed " << config.seed << "\n"
        << describe_training(config) << "\n";
    std::vector<EpochRecord> records;
    try {
        const InterruptHandlers handlers;
        records = run_training(*trainer, config, data, out);
    } catch (const Interrupted& e) {
        out << "mlptrain: " << e.what() << std::endl;
        return 128 + e.signal();
    }
    if (!records.empty()) {
        char line[128];
        std::snprintf(line, sizeof line, "final test_acc %.2f%% test_loss %.6f",
                      100.0 * records.back().test.accuracy, records.back().test.loss);
        out << line << std::endl;
    }
    return 0;
}

}  // namespace mlp
