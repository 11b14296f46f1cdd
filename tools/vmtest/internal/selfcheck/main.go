package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/strait-net/strait/tools/vmtest/internal/guestcheck"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var (
		wantEnv, wantFiles, wantArgs listFlag
		wantDir                      string
		exitCode                     int
		plumbing                     bool
	)
	flag.Var(&wantEnv, "want-env", "NAME=VALUE that must be set (repeatable)")
	flag.Var(&wantFiles, "want-file", "PATH=CONTENT: a file that must hold CONTENT (repeatable)")
	flag.Var(&wantArgs, "want-arg", "a positional argument that must be present (repeatable)")
	flag.StringVar(&wantDir, "want-dir", "", "the working directory the binary must start in")
	flag.IntVar(&exitCode, "exit", 0, "exit status after all checks passed")
	flag.BoolVar(&plumbing, "plumbing-only", false, "only check the runner's plumbing, not the kernel")
	flag.Parse()

	failed := 0
	check := func(name string, err error) {
		if err != nil {
			failed++
			fmt.Printf("selfcheck: FAIL %s: %v\n", name, err)
			return
		}
		fmt.Printf("selfcheck: ok %s\n", name)
	}
	check("guest flag", boolErr(guestcheck.InGuest(), "not in a vmtest guest: "+guestcheck.GuestFlag+" missing from /proc/cmdline"))
	for _, kv := range wantEnv {
		k, v, _ := strings.Cut(kv, "=")
		check("env "+k, equal(os.Getenv(k), v))
	}
	for _, fc := range wantFiles {
		p, c, _ := strings.Cut(fc, "=")
		b, err := os.ReadFile(p)
		if err == nil {
			err = equal(strings.TrimSpace(string(b)), c)
		}
		check("file "+p, err)
	}
	for _, a := range wantArgs {
		check("arg "+a, boolErr(slices.Contains(flag.Args(), a), fmt.Sprintf("argument %q missing from %q", a, flag.Args())))
	}
	if wantDir != "" {
		wd, err := os.Getwd()
		if err == nil {
			err = equal(wd, wantDir)
		}
		check("working directory", err)
	}
	if !plumbing {
		env := guestcheck.NewEnv("vmt")
		for _, c := range guestcheck.All() {
			check(c.Name, c.Run(env))
		}
		env.Close()
	}
	if failed > 0 {
		fmt.Printf("selfcheck: %d checks failed\n", failed)
		os.Exit(1)
	}
	fmt.Println("selfcheck: all checks passed")
	os.Exit(exitCode)
}

func equal(got, want string) error {
	if got != want {
		return fmt.Errorf("got %q, want %q", got, want)
	}
	return nil
}

func boolErr(ok bool, msg string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s", msg)
}
