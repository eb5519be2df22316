// Command qlabbench re-creates the design of the Go task queue that qlab grows
// out of (a buffered channel job queue, N goroutines, an injected processor,
// retry up to 3 times, permanent failure, graceful shutdown with a WaitGroup)
// so that the qlab benchmarks can compare against it on the same jobs.
//
// Usage:
//
//	qlabbench -workers=4 -jobs=100 -workload=seed|noop|sleep [-json]
//
// stdout carries one log line per job (as in the original) followed by the
// summary. With -json the summary is written to stderr as one JSON object
// instead, so a harness can discard stdout and still read the numbers.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

func main() {
	workers := flag.Int("workers", 4, "number of concurrent workers")
	jobs := flag.Int("jobs", 100, "total number of jobs")
	workload := flag.String("workload", "seed", "processor: "+strings.Join(names(), "|"))
	asJSON := flag.Bool("json", false, "write the summary to stderr as JSON instead of text")
	flag.Parse()

	process, ok := Processors[*workload]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown -workload=%q (want %s)\n", *workload, strings.Join(names(), "|"))
		os.Exit(2)
	}
	if *workers < 1 || *jobs < 0 {
		fmt.Fprintln(os.Stderr, "-workers must be >= 1 and -jobs >= 0")
		os.Exit(2)
	}

	s := Run(*workers, *jobs, process, os.Stdout)

	if *asJSON {
		if err := json.NewEncoder(os.Stderr).Encode(s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("Workers: %d\n", s.Workers)
	fmt.Printf("Jobs: %d\n", s.Jobs)
	fmt.Printf("Success: %d\n", s.OK)
	fmt.Printf("Failed: %d\n", s.Failed)
	fmt.Printf("Total time: %v\n", s.Wall)
	fmt.Printf("Jobs/sec: %.2f\n", s.Throughput)
}

func names() []string {
	out := make([]string, 0, len(Processors))
	for name := range Processors {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
