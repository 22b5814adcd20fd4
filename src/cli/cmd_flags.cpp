#include <boost/program_options.hpp>
#include <sstream>

#include "cli/commands.h"
#include "core/config.h"
#include "core/errors.h"

namespace po = boost::program_options;

namespace mixvae::cli {

std::string Flags::get(const std::string& name) const {
  for (const auto& [k, v] : values)
    if (k == name) return v;
  return "";
}

bool Flags::has(const std::string& name) const {
  for (const auto& [k, v] : values)
    if (k == name) return true;
  return false;
}

std::string flags_help(const std::string& usage, const std::vector<FlagSpec>& spec) {
  std::ostringstream os;
  os << "usage: " << usage << "\n\noptions:\n";
  for (const auto& f : spec) {
    os << "  --" << f.name << (f.is_switch ? "" : " VALUE");
    if (!f.default_value.empty()) os << " (default " << f.default_value << ")";
    os << "\n      " << f.help << "\n";
  }
  os << "  --help\n      this text\n";
  return os.str();
}

Flags parse_flags(const std::string& command, const std::string& usage, const std::vector<FlagSpec>& spec,
                  const Args& args, bool* help_requested) {
  po::options_description desc;
  desc.add_options()("help", "");
  for (const auto& f : spec) {
    if (f.is_switch)
      desc.add_options()(f.name.c_str(), po::bool_switch(), f.help.c_str());
    else
      desc.add_options()(f.name.c_str(), po::value<std::string>(), f.help.c_str());
  }
  po::variables_map vm;
  try {
    auto style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(args).options(desc).style(style).run(), vm);
  } catch (const po::unknown_option& e) {
    std::string valid;
    for (const auto& f : spec) valid += " --" + f.name;
    throw UsageError(command + ": unknown option " + e.get_option_name() + " (valid:" + valid + ")");
  } catch (const po::error& e) {
    std::string input;
    for (const auto& a : args) input += a + "\n";
    throw UsageError(command + ": " + program_options_message(e, input));
  }
  *help_requested = vm.count("help") > 0;
  Flags out;
  for (const auto& f : spec) {
    if (f.is_switch) {
      if (vm.count(f.name) && vm[f.name].as<bool>()) out.values.emplace_back(f.name, "1");
    } else if (vm.count(f.name)) {
      out.values.emplace_back(f.name, vm[f.name].as<std::string>());
    } else if (!f.default_value.empty()) {
      out.values.emplace_back(f.name, f.default_value);
    }
  }
  return out;
}

}  // namespace mixvae::cli
