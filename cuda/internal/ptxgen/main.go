// Command ptxgen makes the PTX bundle the cuda backend loads on machines
// without NVRTC: for every variant of every kernel the backend advertises,
// it compiles the variant's compile unit (the same preamble and source the
// backend gives NVRTC) to PTX with clang, and writes them all, with a
// manifest of the sha256 of each source file, to shaders/cuda/ptx.bundle.
// Run it from the repository root after changing any shaders/cuda source:
//
//	go run ./cuda/internal/ptxgen
//
// It needs clang with the NVPTX target (clang-19 by default) and no CUDA
// toolkit: shaders/cuda/clang_prelude.h stands in for the CUDA headers.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/mlxq/mlxq/cuda"
	"github.com/mlxq/mlxq/cuda/internal/ptxbundle"
	"github.com/mlxq/mlxq/shaders"
)

// preludeName is the header, in the kernel sources, that lets clang
// compile them without the CUDA toolkit.
const preludeName = "clang_prelude.h"

func main() {
	var (
		src    = flag.String("src", "shaders/cuda", "directory of the kernel sources, which must match those embedded in package shaders")
		out    = flag.String("out", filepath.Join("shaders", "cuda", shaders.PTXBundleName), "bundle to write")
		clang  = flag.String("clang", "clang-19", "clang with the NVPTX target")
		arch   = flag.String("arch", "sm_80", "PTX target; the driver JIT-compiles it for newer GPUs")
		ptxISA = flag.String("ptx", "ptx80", "PTX ISA version feature")
		jobs   = flag.Int("j", runtime.NumCPU(), "parallel compiles")
		only   = flag.String("only", "", "compile only the units whose name contains this, and write nothing")
	)
	flag.Parse()
	if err := run(*src, *out, *clang, *arch, *ptxISA, *jobs, *only); err != nil {
		fmt.Fprintln(os.Stderr, "ptxgen:", err)
		os.Exit(1)
	}
}

func run(src, out, clang, arch, ptxISA string, jobs int, only string) error {
	hashes, err := ptxbundle.SourceHashes(shaders.CUDA())
	if err != nil {
		return err
	}
	if len(hashes) == 0 {
		return errors.New("no kernel sources embedded in package shaders")
	}
	// The sources embedded in this build of the generator are the ones it
	// compiles; refuse to run if the files on disk differ from them.
	disk, err := ptxbundle.SourceHashes(os.DirFS(src))
	if err != nil {
		return err
	}
	if err := (ptxbundle.Manifest{Sources: disk}).Stale(hashes); err != nil {
		return fmt.Errorf("sources in %s differ from the embedded ones (run from the repository root): %w", src, err)
	}
	tmp, err := os.MkdirTemp("", "ptxgen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Compile from a copy of the embedded sources, the ones the manifest
	// hashes, even if the files on disk change meanwhile.
	srcCopy := filepath.Join(tmp, "src")
	if err := os.MkdirAll(srcCopy, 0o755); err != nil {
		return err
	}
	for name := range hashes {
		data, err := fs.ReadFile(shaders.CUDA(), name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(srcCopy, name), data, 0o644); err != nil {
			return err
		}
	}
	if _, ok := hashes[preludeName]; !ok {
		return fmt.Errorf("no %s in the kernel sources", preludeName)
	}
	pre := filepath.Join(srcCopy, preludeName)
	var units []cuda.Unit
	for _, v := range cuda.BundleVariants() {
		u, err := cuda.CompileUnit(v)
		if err != nil {
			return err
		}
		if only == "" || strings.Contains(u.Name, only) {
			units = append(units, u)
		}
	}
	if len(units) == 0 {
		return errors.New("no variants to compile: the backend advertises no kernels")
	}
	args := clangArgs(arch, ptxISA, srcCopy, pre)
	ptx := make(map[string][]byte, len(units))
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range max(jobs, 1) {
		wg.Go(func() {
			for i := range next {
				u := units[i]
				p, err := compile(clang, args, tmp, i, u)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ptx[u.Name] = p
				}
				mu.Unlock()
			}
		})
	}
	for i := range units {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		if len(errs) > 5 {
			errs = append(errs[:5], fmt.Errorf("and %d more failures", len(errs)-5))
		}
		return errors.Join(errs...)
	}
	if only != "" {
		total := 0
		for _, p := range ptx {
			total += len(p)
		}
		fmt.Printf("compiled %d units, %d bytes of PTX; wrote nothing\n", len(ptx), total)
		return nil
	}
	m := ptxbundle.Manifest{
		Tool:    clang + " " + strings.Join(clangArgs(arch, ptxISA, src, filepath.Join(src, preludeName)), " "),
		Arch:    arch,
		Sources: hashes,
	}
	var buf bytes.Buffer
	if err := ptxbundle.Write(&buf, m, ptx); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d units, %d bytes\n", out, len(ptx), buf.Len())
	return nil
}

// clangArgs are the options that compile a unit to PTX for arch, with
// the kernel sources in dir and the prelude pre.
func clangArgs(arch, ptxISA, dir, pre string) []string {
	return []string{"-x", "cuda", "--cuda-device-only", "--cuda-gpu-arch=" + arch, "-nocudainc", "-nocudalib",
		"-Xclang", "-target-feature", "-Xclang", "+" + ptxISA, "-O3", "-I", dir, "-include", pre, "-S"}
}

// compile compiles unit u to PTX and checks that the PTX calls no
// external function (a libdevice function the prelude lacks).
func compile(clang string, args []string, tmp string, i int, u cuda.Unit) ([]byte, error) {
	in := filepath.Join(tmp, fmt.Sprintf("u%d.cu", i))
	outPath := filepath.Join(tmp, fmt.Sprintf("u%d.ptx", i))
	if err := os.WriteFile(in, []byte(u.Source), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(clang, append(args, "-o", outPath, in)...)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w\n%s", u.Name, clang, err, strings.TrimSpace(string(msg)))
	}
	p, err := os.ReadFile(outPath)
	if err != nil {
		return nil, err
	}
	os.Remove(in)
	os.Remove(outPath)
	if ext := externs(p); len(ext) > 0 {
		return nil, fmt.Errorf("%s: the PTX calls external functions %s; define them in shaders/cuda/%s", u.Name, strings.Join(ext, ", "), preludeName)
	}
	if !bytes.Contains(p, []byte("mlxq_kernel")) {
		return nil, fmt.Errorf("%s: the PTX has no entry point mlxq_kernel", u.Name)
	}
	return p, nil
}

// externs returns the names of the functions the PTX declares .extern.
func externs(ptx []byte) []string {
	var out []string
	lines := strings.Split(string(ptx), "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, ".extern .func") {
			continue
		}
		// The name follows the optional return parameter list, on this
		// line or the next.
		decl := line
		if i+1 < len(lines) {
			decl += " " + lines[i+1]
		}
		decl = strings.TrimPrefix(decl, ".extern .func")
		decl = strings.TrimSpace(decl)
		if strings.HasPrefix(decl, "(") {
			if j := strings.Index(decl, ")"); j >= 0 {
				decl = strings.TrimSpace(decl[j+1:])
			}
		}
		name := strings.FieldsFunc(decl, func(r rune) bool { return r == '(' || r == ' ' || r == '\t' })
		if len(name) > 0 {
			out = append(out, name[0])
		}
	}
	return out
}
