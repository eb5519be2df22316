package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// MaxRetries is how many times a failing job is retried: 1 + MaxRetries
// attempts in all, then the job fails permanently.
const MaxRetries = 3

// SeedDigests is the number of chained SHA-256 digests of the seed processor.
const SeedDigests = 1000

// ErrRetryable marks a failure that is worth another attempt.
var ErrRetryable = errors.New("retryable failure")

// Job is one unit of work.
type Job struct {
	ID      int
	Payload string
}

// Result is the outcome of one job after all its attempts.
type Result struct {
	JobID    int
	Attempts int
	Err      error
}

// Processor is the injected processing logic.
type Processor func(Job) error

// Pool is a fixed set of workers reading jobs from a buffered channel.
type Pool struct {
	workers int
	process Processor
	log     io.Writer
	jobs    chan Job
	results chan Result
	wg      sync.WaitGroup
}

// NewPool makes a pool whose job queue holds queueSize jobs. Per-job log
// lines are written to log (one Fprintf per job, as in the original).
func NewPool(workers, queueSize int, process Processor, log io.Writer) *Pool {
	return &Pool{
		workers: workers,
		process: process,
		log:     log,
		jobs:    make(chan Job, queueSize),
		results: make(chan Result, queueSize),
	}
}

// Start launches the workers.
func (p *Pool) Start() {
	for w := 1; w <= p.workers; w++ {
		p.wg.Add(1)
		go p.worker(w)
	}
}

// Submit enqueues a job; it blocks while the queue is full.
func (p *Pool) Submit(job Job) { p.jobs <- job }

// Results is the channel of finished jobs; it is closed by Shutdown.
func (p *Pool) Results() <-chan Result { return p.results }

// Shutdown stops intake, lets the workers drain the queue, waits for every
// worker to return (no goroutine leak) and closes the results channel.
func (p *Pool) Shutdown() {
	close(p.jobs)
	p.wg.Wait()
	close(p.results)
}

func (p *Pool) worker(id int) {
	defer p.wg.Done()
	for job := range p.jobs {
		var err error
		attempt := 1
		for ; ; attempt++ {
			err = p.process(job)
			if err == nil || attempt > MaxRetries {
				break
			}
			fmt.Fprintf(p.log, "worker %d: job %d attempt %d failed: %v (retrying)\n",
				id, job.ID, attempt, err)
		}
		if err == nil {
			fmt.Fprintf(p.log, "worker %d: job %d done after %d attempt(s)\n", id, job.ID, attempt)
		} else {
			fmt.Fprintf(p.log, "worker %d: job %d FAILED permanently after %d attempts: %v\n",
				id, job.ID, attempt, err)
		}
		p.results <- Result{JobID: job.ID, Attempts: attempt, Err: err}
	}
}

// Summary is the aggregated outcome of a run.
type Summary struct {
	Workers    int           `json:"workers"`
	Jobs       int           `json:"jobs"`
	OK         int           `json:"ok"`
	Failed     int           `json:"failed"`
	WallS      float64       `json:"wall_s"`
	Throughput float64       `json:"throughput"`
	Wall       time.Duration `json:"-"`
}

// Run processes jobs 0..n-1 (payload "job-<i>") with the given number of
// workers and aggregates the results. The wall time covers the pool's start,
// enqueueing, processing, shutdown and aggregation.
func Run(workers, n int, process Processor, log io.Writer) Summary {
	start := time.Now()
	pool := NewPool(workers, n, process, log)
	pool.Start()
	done := make(chan Summary, 1)
	go func() { // result aggregation
		s := Summary{Workers: workers, Jobs: n}
		for r := range pool.Results() {
			if r.Err == nil {
				s.OK++
			} else {
				s.Failed++
			}
		}
		done <- s
	}()
	for i := 0; i < n; i++ {
		pool.Submit(Job{ID: i, Payload: fmt.Sprintf("job-%d", i)})
	}
	pool.Shutdown()
	s := <-done
	s.Wall = time.Since(start)
	s.WallS = s.Wall.Seconds()
	if s.WallS > 0 {
		s.Throughput = float64(n) / s.WallS
	}
	return s
}

// SeedDigest returns the hex of SeedDigests chained SHA-256 digests of payload.
func SeedDigest(payload string) string {
	sum := sha256.Sum256([]byte(payload))
	for k := 1; k < SeedDigests; k++ {
		sum = sha256.Sum256(sum[:])
	}
	return hex.EncodeToString(sum[:])
}

// Seed is the seed processor: SeedDigests chained SHA-256 digests of the
// payload, then a retryable failure when len(payload) % 3 == 0.
func Seed(job Job) error {
	_ = SeedDigest(job.Payload)
	if len(job.Payload)%3 == 0 {
		return fmt.Errorf("job %d: %w", job.ID, ErrRetryable)
	}
	return nil
}

// Noop does nothing and never fails.
func Noop(Job) error { return nil }

// Sleep1ms sleeps one millisecond (an I/O-like job) and never fails.
func Sleep1ms(Job) error {
	time.Sleep(time.Millisecond)
	return nil
}

// Processors maps the -workload flag to a processor.
var Processors = map[string]Processor{"seed": Seed, "noop": Noop, "sleep": Sleep1ms}
