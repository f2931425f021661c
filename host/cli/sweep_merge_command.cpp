#include <CLI/CLI.hpp>

#include <filesystem>

#include "host/cli/sweep_command.hpp"
#include "host/sweep/summary.hpp"

namespace mlp {

CLI::App* add_sweep_merge_command(CLI::App& app, SweepMergeCommand& c) {
    CLI::App* cmd = app.add_subcommand(
        "sweep-merge", "join the summary.json of the shards of one sweep into one leaderboard");
    cmd->add_option("summaries", c.inputs,
                    "folders holding summary.json (a shard's --save-dir), "
                    "or summary files")
        ->required();
    cmd->add_option("--out", c.out_path, "write the merged summary.json here");
    return cmd;
}

int run_sweep_merge(const SweepMergeCommand& c, std::ostream& out) {
    std::vector<SweepSummary> parts;
    std::vector<std::string> paths;
    for (const std::string& input : c.inputs) {
        const std::string path = std::filesystem::is_directory(input)
                                     ? (std::filesystem::path(input) / "summary.json").string()
                                     : input;
        paths.push_back(path);
        parts.push_back(load_summary(path));
    }
    std::vector<int64_t> missing;
    const SweepSummary merged = merge_summaries(parts, paths, &missing);
    out << "merged " << parts.size() << " summar" << (parts.size() == 1 ? "y" : "ies") << ": "
        << merged.models.size() << " of " << merged.n_configs << " configurations\n";
    if (!missing.empty()) {
        out << "missing " << missing.size() << " configuration" << (missing.size() == 1 ? "" : "s")
            << " (indices";
        for (size_t i = 0; i < missing.size() && i < 20; ++i) out << " " << missing[i];
        out << (missing.size() > 20 ? " ...)" : ")") << "; merge every shard's summary\n";
    }
    print_leaderboard(out, merged);
    if (!c.out_path.empty()) {
        save_summary(c.out_path, merged);
        out << "wrote " << c.out_path << "\n";
    }
    out.flush();
    return 0;
}

}  // namespace mlp
