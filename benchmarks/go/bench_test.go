package main

import (
	"io"
	"os"
	"testing"
	"time"
)

// benchPool runs `jobs` jobs on `workers` goroutines b.N times and reports jobs/s.
func benchPool(b *testing.B, workers, jobs int, process Processor, log io.Writer) {
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if s := Run(workers, jobs, process, log); s.OK+s.Failed != jobs {
			b.Fatalf("lost jobs: %+v", s)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(jobs*b.N)/elapsed.Seconds(), "jobs/s")
}

func devNull(b *testing.B) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}

// BenchmarkWorkerPool mirrors the original's benchmark: 1000 no-op jobs,
// 8 workers, one printf per job (written to /dev/null: a real write syscall).
func BenchmarkWorkerPool(b *testing.B) {
	benchPool(b, 8, 1000, Noop, devNull(b))
}

// BenchmarkWorkerPoolNoLog is the same without the per-job write (io.Discard),
// to show what the printf costs.
func BenchmarkWorkerPoolNoLog(b *testing.B) {
	benchPool(b, 8, 1000, Noop, io.Discard)
}

// BenchmarkWorkerPoolSeed is the seed workload, 2000 jobs, 2 workers.
func BenchmarkWorkerPoolSeed(b *testing.B) {
	benchPool(b, 2, 2000, Seed, devNull(b))
}
