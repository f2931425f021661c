#include <iostream>

#include "host/cli/cli.hpp"

int main(int argc, char** argv) { return mlp::run_cli(argc, argv, std::cout, std::cerr); }
