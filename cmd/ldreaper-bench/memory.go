package main

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// heapMetric is the bytes of heap objects, live or not yet swept: the heap
// the program is using, read without stopping the world.
const heapMetric = "/memory/classes/heap/objects:bytes"

// memoryPeak samples this process's heap and resident set while a scenario
// runs. Linux's own high-water mark (VmHWM) catches peaks between samples;
// it is reset at the start when the kernel allows it (clear_refs), and
// otherwise only the samples count.
type memoryPeak struct {
	stop chan struct{}
	done chan struct{}
	// hwmReset says VmHWM was reset at the start, so it belongs to this
	// scenario alone.
	hwmReset bool

	mu       sync.Mutex
	heap     uint64
	rss      uint64
	pageSize uint64
}

// startMemoryPeak returns memory to the OS, so that one scenario's peak does
// not carry into the next, and starts sampling every interval.
func startMemoryPeak(interval time.Duration) *memoryPeak {
	runtime.GC()
	debug.FreeOSMemory()
	m := &memoryPeak{stop: make(chan struct{}), done: make(chan struct{}), pageSize: uint64(os.Getpagesize())}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
	m.hwmReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	m.sample()
	go func() {
		defer close(m.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.sample()
			}
		}
	}()
	return m
}

func (m *memoryPeak) sample() {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	var heap uint64
	if s[0].Value.Kind() == metrics.KindUint64 {
		heap = s[0].Value.Uint64()
	}
	rss := m.residentBytes()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heap = max(m.heap, heap)
	m.rss = max(m.rss, rss)
}

// residentBytes reads the second field of /proc/self/statm (resident pages);
// 0 where there is no procfs.
func (m *memoryPeak) residentBytes() uint64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * m.pageSize
}

// finish stops sampling and returns the peaks in bytes.
func (m *memoryPeak) finish() (heap, rss uint64) {
	close(m.stop)
	<-m.done
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	rss = m.rss
	if m.hwmReset {
		if hwm, ok := readVmHWM(); ok {
			rss = max(rss, hwm)
		}
	}
	return m.heap, rss
}

// readVmHWM reads the peak resident set from /proc/self/status.
func readVmHWM() (uint64, bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	return parseVmHWM(data)
}

// parseVmHWM finds "VmHWM:   12345 kB" in the text of /proc/PID/status.
func parseVmHWM(status []byte) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil || kb > 1<<44 {
			return 0, false
		}
		return kb * 1024, true
	}
	return 0, false
}
