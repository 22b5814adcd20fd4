#pragma once
// One function per subcommand; main() parses nothing but the subcommand name.
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace mixvae::cli {

using Args = std::vector<std::string>;

int cmd_prepare(dist::Communicator& comm, const Args& args);
int cmd_train(dist::Communicator& comm, const Args& args);
int cmd_eval(dist::Communicator& comm, const Args& args);
int cmd_sample(dist::Communicator& comm, const Args& args);
int cmd_sweep(dist::Communicator& comm, const Args& args);
int cmd_report(dist::Communicator& comm, const Args& args);

// Parses "--name value" / "--name=value" flags of a subcommand with Program_options;
// unknown flags are UsageErrors that list the valid ones.
struct FlagSpec {
  std::string name, help, default_value;
  bool is_switch = false;
};
struct Flags {
  std::vector<std::pair<std::string, std::string>> values;
  std::string get(const std::string& name) const;
  bool has(const std::string& name) const;
};
Flags parse_flags(const std::string& command, const std::string& usage, const std::vector<FlagSpec>& spec,
                  const Args& args, bool* help_requested);
std::string flags_help(const std::string& usage, const std::vector<FlagSpec>& spec);

}  // namespace mixvae::cli
