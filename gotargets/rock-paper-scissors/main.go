// rock-paper-scissors is tapbench's opponent: it writes a deterministic sequence of moves to
// stdout, one write() call per move, and reports the ground truth of what it wrote at exit.
//
// The sequence (reproduced exactly by tapbench's Python verifier, bench/truth.py):
//
//	goroutine g of G writes count(g) = N/G + (1 if g < N%G) moves, numbered n = 0, 1, ...
//	move(seed, g, n) = splitmix64(seed + g*0xD1B54A32D192ED03 + (n+1)*0x9E3779B97F4A7C15) % 3
//	0 = rock, 1 = paper, 2 = scissors; all arithmetic wraps modulo 2^64.
//
// Each move is one line "<move> <g> <n>\n" (at most 8+1+4+1+10+1 = 25 bytes), so an observer
// that copies only the first 32 bytes of the buffer can recover the move, its writer and its
// sequence number, and so detect loss and reordering.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const (
	truthFormat   = "tapbench-truth/1"
	maxGoroutines = 4096
	gammaSeq      = 0x9E3779B97F4A7C15
	gammaWriter   = 0xD1B54A32D192ED03
)

var moveNames = [3]string{"rock", "paper", "scissors"}

func splitmix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func moveOf(seed uint64, g, n uint64) int {
	return int(splitmix64(seed+g*gammaWriter+(n+1)*gammaSeq) % 3)
}

// monotonicNs reads CLOCK_MONOTONIC, the clock bpf_ktime_get_ns() and tapbench's Python side use,
// so the report's timestamps line up with the observers' event timestamps. It is the Go
// runtime's own clock read, through the vDSO: no system call, so no tracer stops on it, and it
// costs the same in bare and observed runs.
//
//go:linkname monotonicNs runtime.nanotime
func monotonicNs() int64

const prSetTimerslack = 29 // PR_SET_TIMERSLACK: how late the kernel may fire this thread's timers

// pausePrecisely sleeps d on the kernel's high-resolution timer, with the slack of 1 ns that
// the writer's thread set. Go 1.19's time.Sleep wakes through the network poller, whose
// timeout is in milliseconds: at -rate 20000 the moves came in bursts of about 20 every
// 1.1 ms, not one every 50 µs, and a live observer's latency measured its wake-up after a
// millisecond of idleness. The price is a timer and a wake-up per move: on a 2-vCPU KVM guest
// at 20,000 moves/s the writer went from 3 % to about 47 % of a CPU, nearly all of it system time.
//
// A lone writer sleeps without telling the runtime (RawSyscall): no other goroutine needs its
// P, and handing the P over at every move cost a further 13 % of a CPU. Several writers must
// let one another run while they sleep.
func pausePrecisely(d time.Duration, alone bool) {
	pause := syscall.NsecToTimespec(int64(d))
	for {
		var errno syscall.Errno
		if alone {
			_, _, errno = syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&pause)),
				uintptr(unsafe.Pointer(&pause)), 0)
		} else {
			_, _, errno = syscall.Syscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&pause)),
				uintptr(unsafe.Pointer(&pause)), 0)
		}
		if errno != syscall.EINTR { // interrupted (Go preempts with signals): sleep what is left
			return
		}
	}
}

type writerTruth struct {
	Goroutine int    `json:"goroutine"`
	Expected  uint64 `json:"expected"`
	Written   uint64 `json:"written"`
	Errors    uint64 `json:"errors"`
	Digest    string `json:"sha256"` // of the exact bytes this writer wrote, in order
	LagMaxNs  int64  `json:"lag_max_ns"`
	LagEndNs  int64  `json:"lag_end_ns"`
	// CLOCK_MONOTONIC read immediately before the write() of moves 0, k, 2k ... (k = -stamp-every),
	// kept in memory and reported at exit: what every observer's latency is measured from.
	StampsNs []int64 `json:"stamps_ns"`
}

type selfCheck struct {
	TracerPid       int      `json:"tracer_pid"`
	Seccomp         int      `json:"seccomp"`      // 0 none, 1 strict, 2 filter (a tracer's or a supervisor's)
	NoNewPrivs      int      `json:"no_new_privs"` // set by whoever loaded a filter without CAP_SYS_ADMIN
	CpusAllowed     string   `json:"cpus_allowed"` // where it may run: the placement it was given
	Uid             int      `json:"uid"`          // who it runs as: tapbench launches as the invoking user
	LdPreload       string   `json:"ld_preload"`
	Libraries       []string `json:"libraries"`
	Unexpected      []string `json:"unexpected_libraries"`
	// A mapping at address 0 (zpoline's trampoline): NULL is not unmapped any more.
	PageZeroMapped bool `json:"page_zero_mapped"`
	// Bytes of its own program text in memory that differ from its file (rewritten system
	// calls, a uprobe's breakpoint); -1: it could not compare.
	TextBytesChanged int  `json:"text_bytes_changed"`
	ObserverVisible  bool `json:"observer_visible"`
}

type truthReport struct {
	Format      string            `json:"format"`
	Pid         int               `json:"pid"`
	Seed        uint64            `json:"seed"`
	Moves       uint64            `json:"moves"`
	Goroutines  int               `json:"goroutines"`
	IO          string            `json:"io"`
	Rate        float64           `json:"rate"`
	StampEvery  uint64            `json:"stamp_every"`
	Gomaxprocs  int               `json:"gomaxprocs"`
	Written     uint64            `json:"written"`
	NoiseStdout uint64            `json:"noise_writes_stdout"`
	NoiseOther  uint64            `json:"noise_writes_other_fd"`
	PerKind     map[string]uint64 `json:"per_kind"`
	Writers     []writerTruth     `json:"writers"`
	StartMonoNs int64             `json:"start_mono_ns"`
	EndMonoNs   int64             `json:"end_mono_ns"`
	WallNs      int64             `json:"wall_ns"`
	// CPU time this process used, user + system, from getrusage(RUSAGE_SELF) at the end:
	// the harness subtracts it from what the observer's process tree used.
	CPUNs int64 `json:"cpu_ns"`
	// The same over the move loop only, from just before the first write to just after the
	// last: what scales with the moves, without start-up, self-checks and the report. Work a
	// mechanism does in this process's context (a BPF program in its system call, a hook in
	// its write()) is in it, as the kernel accounts it.
	LoopCPUNs  int64     `json:"loop_cpu_ns"`
	CheckStart selfCheck `json:"self_check_start"`
	CheckEnd   selfCheck `json:"self_check_end"`
}

// processCPUNs is the CPU time every thread of this process has used, user + system (getrusage).
func processCPUNs() int64 {
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) != nil {
		return 0
	}
	return usage.Utime.Nano() + usage.Stime.Nano()
}

// Libraries a dynamically linked Go binary maps on its own; anything else was put there by someone.
var expectedLibraries = map[string]bool{
	"libc.so.6": true, "ld-linux-x86-64.so.2": true, "libpthread.so.0": true, "libdl.so.2": true,
	"libresolv.so.2": true, "libm.so.6": true,
}

func checkForObservers() selfCheck {
	check := selfCheck{LdPreload: os.Getenv("LD_PRELOAD"), Uid: os.Getuid(), Libraries: []string{}, Unexpected: []string{}}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			for prefix, field := range map[string]*int{"TracerPid:": &check.TracerPid,
				"Seccomp:": &check.Seccomp, "NoNewPrivs:": &check.NoNewPrivs} {
				if strings.HasPrefix(line, prefix) {
					*field, _ = strconv.Atoi(strings.TrimSpace(line[len(prefix):]))
				}
			}
			if strings.HasPrefix(line, "Cpus_allowed_list:") {
				check.CpusAllowed = strings.TrimSpace(line[len("Cpus_allowed_list:"):])
			}
		}
	}
	check.TextBytesChanged = -1
	if maps, err := os.ReadFile("/proc/self/maps"); err == nil {
		seen := map[string]bool{}
		executable, _ := os.Executable()
		check.TextBytesChanged = 0
		for _, line := range strings.Split(string(maps), "\n") {
			fields := strings.Fields(line)
			if len(fields) > 0 && strings.HasPrefix(fields[0], "00000000-") {
				check.PageZeroMapped = true
			}
			if len(fields) >= 6 && fields[5] == executable && strings.Contains(fields[1], "x") {
				if changed, ok := textChanged(fields[0], fields[2], executable); ok {
					check.TextBytesChanged += changed
				} else {
					check.TextBytesChanged = -1
				}
			}
			if len(fields) < 6 || !strings.Contains(fields[5], ".so") || seen[fields[5]] {
				continue
			}
			seen[fields[5]] = true
			check.Libraries = append(check.Libraries, fields[5])
			if !expectedLibraries[filepath.Base(fields[5])] {
				check.Unexpected = append(check.Unexpected, fields[5])
			}
		}
	}
	check.ObserverVisible = check.TracerPid != 0 || check.Seccomp != 0 || check.NoNewPrivs != 0 ||
		check.LdPreload != "" || len(check.Unexpected) > 0 || check.PageZeroMapped || check.TextBytesChanged > 0
	return check
}

// textChanged counts the bytes of one executable mapping of this program ("start-end" and the
// file offset, hex, as /proc/self/maps gives them) that differ from the file they were mapped from.
func textChanged(addresses, offsetHex, executable string) (int, bool) {
	bounds := strings.SplitN(addresses, "-", 2)
	start, err1 := strconv.ParseUint(bounds[0], 16, 64)
	end, err2 := strconv.ParseUint(bounds[len(bounds)-1], 16, 64)
	offset, err3 := strconv.ParseInt(offsetHex, 16, 64)
	file, err4 := os.Open(executable)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(bounds) != 2 || end <= start {
		return 0, false
	}
	defer file.Close()
	onDisk := make([]byte, end-start)
	n, _ := file.ReadAt(onDisk, offset) // the mapping's last page may run past the file's end
	inMemory := unsafe.Slice((*byte)(unsafe.Pointer(uintptr(start))), n)
	changed := 0
	for i := 0; i < n; i++ {
		if inMemory[i] != onDisk[i] {
			changed++
		}
	}
	return changed, true
}

func appendLine(buf []byte, move int, g int, n uint64) []byte {
	buf = append(buf, moveNames[move]...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(g), 10)
	buf = append(buf, ' ')
	buf = strconv.AppendUint(buf, n, 10)
	return append(buf, '\n')
}

// Adversarial writes an observer must not mistake for moves: an empty write, 1 MiB that
// starts like a stream of moves, binary bytes, a move line split over two writes, and a move
// line written to another descriptor. Returns the writes made to stdout and to the other fd.
var (
	noiseBig    = bytes.Repeat([]byte("rock 0 0\n"), (1<<20)/9+1)[:1<<20]
	noiseBinary = []byte("\x00\xffrock\x00paper 1 1\n\x00\xfe\x80scissors\x00\x00\x00\x00\x00\x00\x00")
	noiseSplit  = [][]byte{[]byte("paper 0 0"), []byte("\n")}
)

func writeNoise(write func([]byte) (int, error), other *os.File) (stdout, otherFd uint64) {
	write(noiseBig[:0])
	write(noiseBig)
	write(noiseBinary)
	write(noiseSplit[0])
	write(noiseSplit[1])
	other.Write([]byte("rock 0 0\n"))
	return 5, 1
}

// atDepth calls do() depth frames down, each frame small, so that the call chain of do()
// starts a little further down the stack for every depth.
//
//go:noinline
func atDepth(depth int, do func()) byte {
	var pad [8]byte
	if depth == 0 {
		do()
		return pad[0]
	}
	pad[depth%8] = byte(depth)
	return atDepth(depth-1, do) + pad[(depth*7)%8]
}

// onFreshStack runs do() on a new goroutine (a new, small stack) at a depth that varies with
// n, and waits for it: some of these writes have to grow their stack inside the write path
// itself, which is what an entry uprobe would see twice.
func onFreshStack(n uint64, do func()) {
	done := make(chan struct{})
	go func() {
		atDepth(int(n%400), do)
		close(done)
	}()
	<-done
}

func fail(code int, format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "ERROR: "+format+"\n", args...)
	os.Exit(code)
}

func waitForStart(mode string) {
	switch mode {
	case "now":
	case "stdin":
		// The harness holds the gate: it attaches its observer, then writes one byte.
		if _, err := bufio.NewReader(os.Stdin).ReadByte(); err != nil {
			fail(1, "start gate: stdin closed before the go signal (%v)", err)
		}
	case "usr1":
		gate := make(chan os.Signal, 1)
		signal.Notify(gate, syscall.SIGUSR1)
		fmt.Fprintf(os.Stderr, "rock-paper-scissors: pid %d waiting for SIGUSR1\n", os.Getpid())
		<-gate
		signal.Stop(gate)
	}
}

func main() {
	moves := flag.Uint64("moves", 1000, "total number of moves, shared among the goroutines")
	seed := flag.Uint64("seed", 1, "seed of the deterministic move sequence")
	rate := flag.Float64("rate", 0, "moves per second over all goroutines (0 = flat out)")
	goroutines := flag.Int("goroutines", 1, "number of goroutines writing concurrently")
	ioPath := flag.String("io", "go", "write path: 'go' (os.Stdout, raw system calls) or 'libc' (glibc write(), cgo build only)")
	start := flag.String("start", "now", "start gate: 'now', 'stdin' (wait for one byte on stdin) or 'usr1' (wait for SIGUSR1)")
	reportPath := flag.String("report", "", "write the ground-truth report (JSON) to this file at exit")
	noiseEvery := flag.Uint64("noise", 0, "every N moves, also write adversarial non-moves (0 = never)")
	freshStacks := flag.Bool("fresh-stacks", false, "write every move from a new goroutine at a varying stack depth (stack growth inside write)")
	stampEvery := flag.Uint64("stamp-every", 0, "stamp CLOCK_MONOTONIC just before the write of every Nth move of each goroutine, reported at exit (0 = never, 1 = every move)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags]\n\nWrites rock/paper/scissors moves to stdout, one write() per move.\n\n", os.Args[0])
		flag.PrintDefaults()
		fmt.Fprintf(os.Stderr, "\nexample: %s -moves 100000 -goroutines 8 -report truth.json > /dev/null\n", os.Args[0])
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, "unexpected argument %q (see -h)", flag.Arg(0))
	}
	if *goroutines < 1 || *goroutines > maxGoroutines {
		fail(2, "-goroutines must be between 1 and %d, got %d", maxGoroutines, *goroutines)
	}
	if *rate < 0 || *rate > 1e9 {
		fail(2, "-rate must be between 0 (flat out) and 1e9 moves/s, got %g", *rate)
	}
	if *start != "now" && *start != "stdin" && *start != "usr1" {
		fail(2, "-start must be now, stdin or usr1, got %q", *start)
	}
	write := func(line []byte) (int, error) { return os.Stdout.Write(line) }
	switch *ioPath {
	case "go":
	case "libc":
		if !libcAvailable {
			fail(2, "-io libc needs the cgo build (rock-paper-scissors-cgo); this binary is static and has no libc")
		}
		write = libcWrite
	default:
		fail(2, "-io must be go or libc, got %q", *ioPath)
	}

	waitForStart(*start)
	report := truthReport{
		Format: truthFormat, Pid: os.Getpid(), Seed: *seed, Moves: *moves, Goroutines: *goroutines,
		IO: *ioPath, Rate: *rate, StampEvery: *stampEvery, Gomaxprocs: runtime.GOMAXPROCS(0),
		PerKind: map[string]uint64{}, Writers: make([]writerTruth, *goroutines),
	}
	report.CheckStart = checkForObservers()
	perKind := make([][3]uint64, *goroutines)
	noise := make([][2]uint64, *goroutines)
	var otherFd *os.File
	if *noiseEvery > 0 {
		var err error
		if otherFd, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
			fail(1, "cannot open %s for noise writes: %v", os.DevNull, err)
		}
	}

	G := uint64(*goroutines)
	var wg sync.WaitGroup
	loopStartCPU := processCPUNs()
	report.StartMonoNs = monotonicNs()
	begin := time.Now()
	for g := 0; g < *goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			if *rate > 0 {
				// A paced writer keeps its thread, on which the timer slack is set: see pausePrecisely.
				runtime.LockOSThread()
				syscall.Syscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
			}
			// Counters stay local until the end, so writers never share a cache line per move.
			expected := *moves / G
			if uint64(g) < *moves%G {
				expected++
			}
			var written, errors uint64
			var lagMax int64
			var kinds [3]uint64
			digest := sha256.New()
			buf := make([]byte, 0, 64)
			stamps := []int64{}
			if *stampEvery > 0 {
				stamps = make([]int64, 0, expected / *stampEvery + 1) // no allocation while writing
			}
			var due time.Duration
			for n := uint64(0); n < expected; n++ {
				if *rate > 0 {
					// Deadline schedule: move k of all writers is due at k/rate after the start,
					// whatever happened before, so late moves never push later ones back.
					due = time.Duration(float64(n*G+uint64(g)) * 1e9 / *rate)
					if lag := time.Since(begin) - due; lag < 0 {
						pausePrecisely(-lag, G == 1)
					} else if int64(lag) > lagMax {
						lagMax = int64(lag)
					}
				}
				move := moveOf(*seed, uint64(g), n)
				buf = appendLine(buf[:0], move, g, n)
				if *stampEvery > 0 && n%*stampEvery == 0 {
					stamps = append(stamps, monotonicNs())
				}
				count, err := 0, error(nil)
				if *freshStacks {
					onFreshStack(n, func() { count, err = write(buf) })
				} else {
					count, err = write(buf)
				}
				if err != nil || count != len(buf) {
					errors++
					continue
				}
				digest.Write(buf)
				written++
				kinds[move]++
				if *noiseEvery > 0 && written%*noiseEvery == 0 {
					toStdout, toOther := writeNoise(write, otherFd)
					noise[g][0] += toStdout
					noise[g][1] += toOther
				}
			}
			truth := writerTruth{Goroutine: g, Expected: expected, Written: written, Errors: errors,
				Digest: hex.EncodeToString(digest.Sum(nil)), LagMaxNs: lagMax, StampsNs: stamps}
			if *rate > 0 {
				truth.LagEndNs = int64(time.Since(begin) - due)
			}
			report.Writers[g] = truth
			perKind[g] = kinds
		}(g)
	}
	wg.Wait()
	report.EndMonoNs = monotonicNs()
	report.LoopCPUNs = processCPUNs() - loopStartCPU
	report.WallNs = report.EndMonoNs - report.StartMonoNs
	report.CPUNs = processCPUNs()
	report.CheckEnd = checkForObservers()
	for g := range report.Writers {
		report.Written += report.Writers[g].Written
		report.NoiseStdout += noise[g][0]
		report.NoiseOther += noise[g][1]
		for m, name := range moveNames {
			report.PerKind[name] += perKind[g][m]
		}
	}
	if *reportPath != "" {
		data, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(*reportPath, append(data, '\n'), 0o644); err != nil {
			fail(1, "cannot write the report: %v", err)
		}
	}
	if report.Written != *moves {
		os.Exit(1)
	}
}
