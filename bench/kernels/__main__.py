"""`python -m bench.kernels`: the same as `tapbench kernels`."""
import argparse
import sys

from bench.kernels.command import EXAMPLES, HELP, add_arguments, command

parser = argparse.ArgumentParser(prog="python -m bench.kernels", description=HELP, epilog=EXAMPLES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
add_arguments(parser)
sys.exit(command(parser.parse_args()))
