// Command benchplot draws what `trustlog bench --json` saved as a PNG:
// commit → sink ack latency percentiles per wake-up mode, and drain rate
// against backlog size. It is a command of its own so that the trustlog
// binary does not link the plotting library and its fonts.
//
//	go run ./internal/tools/benchplot docs/bench/*.json     # each FILE.json to FILE.png
//	go run ./internal/tools/benchplot -o run.png run.json
//
// Each FILE.json is drawn into FILE.png beside it, or with -o (one input
// only) into the file -o names. It exits 0 when every file was drawn, 1
// when one could not be, 2 on a usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-trustlog/trustlog/internal/benchplot"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run draws the files args name and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchplot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "the PNG file to write (one input only); default: the input's name with .png for .json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: benchplot [-o OUT.png] FILE.json...  (files that trustlog bench --json wrote)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() == 0:
		fmt.Fprintln(stderr, "benchplot: no input: name the JSON files that trustlog bench --json wrote")
		return 2
	case *out != "" && fs.NArg() > 1:
		fmt.Fprintf(stderr, "benchplot: -o names one output, and there are %d inputs\n", fs.NArg())
		return 2
	}
	for _, in := range fs.Args() {
		png := *out
		if png == "" {
			if !strings.HasSuffix(in, ".json") {
				fmt.Fprintf(stderr, "benchplot: %s: not a .json file; name the output with -o\n", in)
				return 2
			}
			png = strings.TrimSuffix(in, ".json") + ".png"
		}
		rep, err := benchplot.ReadReport(in)
		if err == nil {
			err = benchplot.WriteReport(png, rep)
		}
		if err != nil {
			fmt.Fprintf(stderr, "benchplot: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s -> %s\n", in, png)
	}
	return 0
}
