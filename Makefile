# tapbench: `sudo make bench` measures, `sudo make test` tests. Both set the machine up first.
VENV := .venv
BIN := gotargets/bin
GO_SRC := gotargets/go.mod $(wildcard gotargets/rock-paper-scissors/*.go)

.PHONY: setup venv build core bench test gate kernels clean check-root

check-root:
	@if [ "$$(id -u)" != 0 ]; then \
	    echo "tapbench needs root to install packages and load BPF programs: run 'sudo make $(or $(MAKECMDGOALS),setup)'" >&2; \
	    exit 1; fi

setup: check-root
	@bash bench/setup-machine.sh
	@$(MAKE) --no-print-directory venv build

venv: $(VENV)/.installed

# Debian's bcc is built for the system Python, so the virtualenv uses /usr/bin/python3 and
# sees its site-packages.
$(VENV)/.installed: pyproject.toml
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

build: $(BIN)/rock-paper-scissors $(BIN)/rock-paper-scissors-cgo preload/libtapbench_hook.so preload/libtapbench_zpoline.so \
       preload/libtapbench_sud.so $(BIN)/hostile-target core

# The eBPF hook's CO-RE object (methods/_kernel/core_loader.py): compiled here, once, against a vmlinux.h
# made from this kernel's BTF; libbpf relocates it where it loads, with no compiler or kernel
# headers there. Its sources' sha256 beside it tells a stale object. A kernel without BTF
# gets none (--loader core says so; bcc still works).
BTF := /sys/kernel/btf/vmlinux
CORE_OBJECT := bpf/write_events.core.o
CORE_SOURCES := bpf/write_events.core.bpf.c bpf/write_events.h
# The referee of `run -- CMD` (bench/run/referee.py): the kernel's count of a program's writes.
REFEREE_OBJECT := bpf/referee.core.o
core:
	@if [ -e $(BTF) ]; then $(MAKE) --no-print-directory $(CORE_OBJECT) $(REFEREE_OBJECT); \
	else echo "setup: this kernel has no BTF ($(BTF)): the CO-RE objects are not built (eBPF --loader core and run -- CMD unavailable)"; fi

bpf/vmlinux.h: $(BTF)
	bpftool btf dump file $(BTF) format c > $@.tmp && mv $@.tmp $@

$(CORE_OBJECT): $(CORE_SOURCES) bpf/vmlinux.h
	clang -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I bpf -c bpf/write_events.core.bpf.c -o $@
	cat $(CORE_SOURCES) | sha256sum | cut -d' ' -f1 > $@.sha256

# -mcpu=v3: the referee's atomic compare-and-swap (the first write's stamp, set once).
$(REFEREE_OBJECT): bpf/referee.core.bpf.c bpf/vmlinux.h
	clang -O2 -g -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -I bpf -c bpf/referee.core.bpf.c -o $@
	sha256sum bpf/referee.core.bpf.c | cut -d' ' -f1 > $@.sha256

# The LD_PRELOAD hook; only write() and the layout table are exported.
preload/libtapbench_hook.so: preload/hook.c preload/ring.h preload/ring_writer.h
	gcc -O2 -fPIC -shared -Wall -Wextra -Werror -fvisibility=hidden -o $@ preload/hook.c -ldl

# The zpoline hook (methods/zpoline.py), with libopcodes (binutils-dev) to find the syscall
# instructions. It runs inside every system call of its target: no SSE register of the
# caller's may be touched (-mgeneral-regs-only), and no copy loop may become a libc call.
preload/libtapbench_zpoline.so: preload/zpoline.c preload/syscall_hook.h preload/ring.h preload/ring_writer.h
	gcc -O2 -fPIC -shared -Wall -Wextra -Werror -fvisibility=hidden -mgeneral-regs-only \
	    -fno-tree-loop-distribute-patterns -o $@ preload/zpoline.c -lopcodes

# The SUD hook (methods/sud.py): the same system-call hook, entered from a SIGSYS handler.
preload/libtapbench_sud.so: preload/sud.c preload/syscall_hook.h preload/ring.h preload/ring_writer.h
	gcc -O2 -fPIC -shared -Wall -Wextra -Werror -fvisibility=hidden -mgeneral-regs-only \
	    -fno-tree-loop-distribute-patterns -o $@ preload/sud.c

# A target that attacks what of its observer it can reach (bench/probes/hostile.py).
$(BIN)/hostile-target: bench/probes/hostile_target.c
	mkdir -p $(BIN)
	gcc -O2 -Wall -Wextra -Werror -o $@ bench/probes/hostile_target.c

# The realistic opponent: pure Go, static, writes with raw system calls.
$(BIN)/rock-paper-scissors: $(GO_SRC)
	cd gotargets && CGO_ENABLED=0 go build -o bin/rock-paper-scissors ./rock-paper-scissors

# The same source with cgo: dynamically linked, can write through glibc's write().
$(BIN)/rock-paper-scissors-cgo: $(GO_SRC)
	cd gotargets && CGO_ENABLED=1 go build -o bin/rock-paper-scissors-cgo ./rock-paper-scissors

bench: setup
	$(VENV)/bin/tapbench bench

# Kernel dependence, measured (bench/kernels/): every technique on Debian's 5.10, 6.1 and 6.12
# kernels booted with virtme-ng, under QEMU's software emulation where KVM does not work, and
# on this kernel; results/kernels.json. 11 minutes on 2 vCPUs under emulation (downloads reused), so bench
# does not run it. KERNELS_ARGS passes options (--kernel NAME, --method M ..., --jobs N).
kernels: setup
	$(VENV)/bin/python -m bench.kernels $(KERNELS_ARGS)

test: setup
	$(VENV)/bin/pytest -ra --durations=20

# The regression gate CI runs after the tests: the Python hot paths timed against
# results/benchmarks/, then this code's backends measured against those of the commit the
# published results come from, on this machine, in one run (bench/gate/ab.py).
# HOTPATH_MARGIN: five runs on a quiet machine spread by +-8 %, but the same benchmarks ran
# 1.9x slower while a sweep shared the two cores; only a slowdown beyond 2.5x fails.
HOTPATH_MARGIN := 150%
gate: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/test_hotpaths.py --benchmark-enable \
	    --benchmark-storage=results/benchmarks --benchmark-compare --benchmark-compare-fail=median:$(HOTPATH_MARGIN) \
	    --benchmark-columns=min,median,iqr,rounds
	$(VENV)/bin/tapbench gate

clean:
	rm -rf $(VENV) $(BIN) preload/libtapbench_hook.so preload/libtapbench_zpoline.so preload/libtapbench_sud.so *.egg-info bpf/vmlinux.h $(CORE_OBJECT) $(CORE_OBJECT).sha256 $(REFEREE_OBJECT) $(REFEREE_OBJECT).sha256
