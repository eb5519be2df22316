package main

import (
	"io"
	"runtime"
	"testing"
	"time"
)

func TestSeedCounts(t *testing.T) {
	for _, tc := range []struct{ jobs, ok, failed int }{
		{100, 10, 90}, {1000, 910, 90}, {2000, 1910, 90},
	} {
		s := Run(4, tc.jobs, Seed, io.Discard)
		if s.OK != tc.ok || s.Failed != tc.failed {
			t.Errorf("%d jobs: got ok=%d failed=%d, want %d/%d", tc.jobs, s.OK, s.Failed, tc.ok, tc.failed)
		}
	}
}

// The Python peers' seed_job must compute the same digests (values from hashlib).
func TestSeedDigestMatchesPython(t *testing.T) {
	want := map[string]string{
		"job-0":  "2ed20bf8ca555bc675ad00ab2f386d9dfd19af07bd5f6df6bce2fa633e9873f0",
		"job-10": "779c7767d796b9203692ce1e2f01327bc87f1b38895ba7d4f7394b7c0512f208",
	}
	for payload, hex := range want {
		if got := SeedDigest(payload); got != hex {
			t.Errorf("SeedDigest(%q) = %s, want %s", payload, got, hex)
		}
	}
}

func TestRetriesThenPermanentFailure(t *testing.T) {
	calls := make(chan int, 16)
	fail := func(j Job) error { calls <- j.ID; return ErrRetryable }
	p := NewPool(1, 1, fail, io.Discard)
	p.Start()
	p.Submit(Job{ID: 7, Payload: "job-7"})
	p.Shutdown()
	r := <-p.Results()
	if r.Err == nil || r.Attempts != MaxRetries+1 || len(calls) != MaxRetries+1 {
		t.Fatalf("got %+v after %d calls, want %d attempts and an error", r, len(calls), MaxRetries+1)
	}
}

func TestShutdownLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	s := Run(8, 500, Noop, io.Discard)
	if s.OK != 500 || s.Failed != 0 {
		t.Fatalf("got %+v", s)
	}
	deadline := time.Now().Add(time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left, had %d before", n, before)
	}
}
