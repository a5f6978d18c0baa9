// facetex: one binary for training and cluster batch jobs. This file only wires subcommands; the work lives in
// the libraries (see docs/architecture.md).
#include "apps/cli.h"
#include "core/fatal_signal.h"

int main(int argc, char** argv) {
  facetex::install_fatal_signal_report("facetex");
  facetex::app::Cli cli;
  facetex::app::add_data_commands(cli);
  facetex::app::add_convert_commands(cli);
  facetex::app::add_face_commands(cli);
  facetex::app::add_train_commands(cli);
  facetex::app::add_metrics_commands(cli);
  facetex::app::add_generate_commands(cli);
  facetex::app::add_reconstruct_command(cli);
  facetex::app::add_version_command(cli);
  return cli.main(argc, argv);
}
