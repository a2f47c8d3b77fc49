module tapbench/gotargets

go 1.19
