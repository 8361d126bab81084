// tollgate-regoc: a persistent Rego -> WASM bundle compiler for the gateway's live policy directory.
//
// `opa build -b -t wasm` is a process per edit, and on a busy machine most of its wall time is process start and
// waiting for a core (bench/NOTES.md, "Policy reload"). This program stays running and compiles on request with OPA's
// own Go API, configured the way OPA's cmd/build.go (dobuild) configures it for the flags the gateway passes:
//
//	opa build -b -t wasm --capabilities <caps> --ignore <glob>... -r <revision> -e <entrypoint>... -o <output> .
//
// run from inside the policy directory. Same module version as the opa binary (scripts/install-tools.sh), so the
// bundle (policy.wasm, data, manifest) and the error text are the same.
//
// Protocol: one JSON object per line on stdin, one answer per line on stdout, in order:
//
//	{"id":1,"dir":"/abs/policies","entrypoints":["tollgate/decision"],"capabilities":"/abs/caps.json",
//	 "ignore":["*_test.rego"],"revision":"src-...","output":"/abs/bundle.tar.gz"}
//	{"id":1,"ok":true}  or  {"id":1,"ok":false,"error":"error: 1 error occurred: main.rego:3: rego_parse_error: ..."}
//
// The error is what opa prints on a failed build ("error: " and the error). The output file is written only when
// the build succeeds. `tollgate-regoc --version` prints the version it was built with (install-tools.sh keys on it).
// It exits when stdin closes.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/compile"
	"github.com/open-policy-agent/opa/v1/loader"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

type request struct {
	ID           int64    `json:"id"`
	Dir          string   `json:"dir"`
	Entrypoints  []string `json:"entrypoints"`
	Capabilities string   `json:"capabilities"`
	Ignore       []string `json:"ignore"`
	Revision     *string  `json:"revision"`
	Output       string   `json:"output"`
}

type answer struct {
	ID    int64  `json:"id"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Capabilities files by path: the gateway writes one per process and never changes it.
var capsCache sync.Map

func capabilities(path string) (*ast.Capabilities, error) {
	if c, ok := capsCache.Load(path); ok {
		return c.(*ast.Capabilities), nil
	}
	// As opa's --capabilities flag: a file, else a released version's name.
	c, errPath := ast.LoadCapabilitiesFile(path)
	if errPath != nil {
		var errVersion error
		if c, errVersion = ast.LoadCapabilitiesVersion(path); errVersion != nil {
			return nil, fmt.Errorf("no such file or capabilities version found: %v", path)
		}
	}
	capsCache.Store(path, c)
	return c, nil
}

// filter is opa build's loader filter in bundle mode: a file whose name matches an --ignore glob is skipped.
func filter(ignore []string) loader.Filter {
	return func(abspath string, info os.FileInfo, depth int) bool {
		for _, s := range ignore {
			if loader.GlobExcludeName(s, 1)(abspath, info, depth) {
				return true
			}
		}
		return false
	}
}

func build(req request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("compiler panic: %v", p)
		}
	}()
	if req.Dir == "" || req.Output == "" || req.Capabilities == "" {
		return errors.New("dir, output and capabilities are required")
	}
	caps, err := capabilities(req.Capabilities)
	if err != nil {
		return err
	}
	// opa build runs with the directory as its working directory and `.` as the path: module paths in the bundle
	// (and in error messages) are relative to it. Requests are handled one at a time, so the chdir is safe.
	if err := os.Chdir(req.Dir); err != nil {
		return err
	}
	var out bytes.Buffer
	c := compile.New().
		WithCapabilities(caps).
		WithTarget(compile.TargetWasm).
		WithPlanFormat(compile.PlanFormatJSON).
		WithAsBundle(true).
		WithPruneUnused(false).
		WithOptimizationLevel(0).
		WithOutput(&out).
		WithEntrypoints(req.Entrypoints...).
		WithRegoAnnotationEntrypoints(true).
		WithPaths(".").
		WithFilter(filter(req.Ignore)).
		WithBundleLazyLoadingMode(bundle.HasExtension()).
		WithPartialNamespace("partial").
		WithFollowSymlinks(false).
		WithPlanAddons([]string{}).
		WithRegoVersion(ast.DefaultRegoVersion).
		WithBundleVerificationKeyID("default").
		WithEnablePrintStatements(false)
	if req.Revision != nil {
		c = c.WithRevision(*req.Revision)
	}
	if err := c.Build(context.Background()); err != nil {
		return err
	}
	// Written aside and renamed: a reader never sees half a bundle.
	tmp := req.Output + ".regoc-tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, req.Output)
}

func main() {
	if len(os.Args) > 1 {
		if os.Args[1] == "--version" || os.Args[1] == "version" {
			fmt.Println(version)
			return
		}
		fmt.Fprintln(os.Stderr, "usage: tollgate-regoc [--version]  (requests on stdin, one JSON object per line)")
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		var a answer
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			a = answer{ID: req.ID, Error: "error: bad request: " + err.Error()}
		} else if err := build(req); err != nil {
			a = answer{ID: req.ID, Error: "error: " + err.Error()}
		} else {
			a = answer{ID: req.ID, OK: true}
		}
		if err := enc.Encode(a); err != nil {
			os.Exit(1)
		}
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
}
