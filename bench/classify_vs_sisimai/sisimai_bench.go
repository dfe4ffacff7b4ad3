// go-sisimai's side of run.sh: whole passes over the corpus files, each decoded
// with sisimai.Rise (the corpus's expected reasons come from this decoder), for
// at least MIN_SECONDS; prints one JSON line like classify-bench. Each file is
// given by its path, as sisimai's own tools do: handing it the text instead
// panics in go-sisimai ed142de on messages shorter than 1,000 bytes
// (mail.setNewLine slices [:1000]). The files sit in the page cache after the
// first pass, so the reads cost little beside the decoding.
//
//	sisimai-bench CORPUS_DIR MIN_SECONDS
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"libsisimai.org/sisimai"
)

func main() {
	root := os.Args[1]
	secs, _ := strconv.ParseFloat(os.Args[2], 64)
	f, err := os.Open(filepath.Join(root, "expected.jsonl"))
	if err != nil {
		panic(err)
	}
	var paths []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e struct{ File string }
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.File == "" {
			continue
		}
		path := filepath.Join(root, "emails", e.File)
		if _, err := os.Stat(path); err != nil {
			panic(err)
		}
		paths = append(paths, path)
	}
	args := sisimai.Args()
	args.Delivered = true
	args.Vacation = true
	passes, facts := 0, 0
	start := time.Now()
	for time.Since(start).Seconds() < secs || passes == 0 {
		for _, m := range paths {
			got, _ := sisimai.Rise(m, args)
			facts += len(*got)
		}
		passes++
	}
	elapsed := time.Since(start).Seconds()
	fmt.Printf("{\"tool\":\"go-sisimai\",\"messages\":%d,\"passes\":%d,\"seconds\":%.3f,\"per_second\":%.1f,\"facts_per_pass\":%d}\n",
		len(paths), passes, elapsed, float64(len(paths)*passes)/elapsed, facts/passes)
}
