package cuda

import (
	"fmt"
	"runtime"
	"strings"
)

// nvrtcAPI is the part of NVRTC the backend calls; nvrtcResult is int32.
type nvrtcAPI struct {
	nvrtcVersion           func(major, minor *int32) int32
	nvrtcGetErrorString    func(code int32) *byte
	nvrtcCreateProgram     func(prog *uintptr, src string, name string, n int32, headers **byte, names **byte) int32
	nvrtcCompileProgram    func(prog uintptr, n int32, opts **byte) int32
	nvrtcGetProgramLogSize func(prog uintptr, size *uint64) int32
	nvrtcGetProgramLog     func(prog uintptr, log *byte) int32
	nvrtcGetCUBINSize      func(prog uintptr, size *uint64) int32
	nvrtcGetCUBIN          func(prog uintptr, out *byte) int32
	nvrtcDestroyProgram    func(prog *uintptr) int32

	// version is "major.minor", set when the library is loaded.
	version string
}

func (a *nvrtcAPI) symbols() []symbol {
	return []symbol{
		{&a.nvrtcVersion, "nvrtcVersion"},
		{&a.nvrtcGetErrorString, "nvrtcGetErrorString"},
		{&a.nvrtcCreateProgram, "nvrtcCreateProgram"},
		{&a.nvrtcCompileProgram, "nvrtcCompileProgram"},
		{&a.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize"},
		{&a.nvrtcGetProgramLog, "nvrtcGetProgramLog"},
		{&a.nvrtcGetCUBINSize, "nvrtcGetCUBINSize"},
		{&a.nvrtcGetCUBIN, "nvrtcGetCUBIN"},
		{&a.nvrtcDestroyProgram, "nvrtcDestroyProgram"},
	}
}

// check turns an nvrtcResult into an error naming the call, or nil.
func (a *nvrtcAPI) check(call string, code int32) error {
	if code == 0 {
		return nil
	}
	name := ""
	if a.nvrtcGetErrorString != nil {
		name = goString(a.nvrtcGetErrorString(code))
	}
	if name == "" {
		name = fmt.Sprintf("nvrtcResult(%d)", code)
	}
	return fmt.Errorf("%w: %s: %s", ErrNVRTC, call, name)
}

// loadVersion reads the library's version into a.version.
func (a *nvrtcAPI) loadVersion() error {
	var major, minor int32
	if err := a.check("nvrtcVersion", a.nvrtcVersion(&major, &minor)); err != nil {
		return err
	}
	a.version = fmt.Sprintf("%d.%d", major, minor)
	return nil
}

// header is a source file the program may #include by name.
type header struct{ name, text string }

// compile compiles src (named name, as in its error messages) with the
// headers and options given, and returns the CUBIN. A compile failure's
// error carries NVRTC's log.
func (a *nvrtcAPI) compile(name, src string, headers []header, opts []string) ([]byte, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	cstrs := func(ss []string) []*byte {
		out := make([]*byte, len(ss))
		for i, s := range ss {
			b := cString(s)
			pin.Pin(&b[0])
			out[i] = &b[0]
		}
		return out
	}
	var hdrs, names []*byte
	for _, h := range headers {
		hdrs = append(hdrs, cstrs([]string{h.text})...)
		names = append(names, cstrs([]string{h.name})...)
	}
	var hp, np *byte
	hpp, npp := &hp, &np
	if len(hdrs) > 0 {
		hpp, npp = &hdrs[0], &names[0]
	}
	var prog uintptr
	if err := a.check("nvrtcCreateProgram", a.nvrtcCreateProgram(&prog, src, name, int32(len(hdrs)), hpp, npp)); err != nil {
		return nil, err
	}
	defer a.nvrtcDestroyProgram(&prog)
	copts := cstrs(opts)
	var op *byte
	opp := &op
	if len(copts) > 0 {
		opp = &copts[0]
	}
	if err := a.check("nvrtcCompileProgram", a.nvrtcCompileProgram(prog, int32(len(copts)), opp)); err != nil {
		log := a.log(prog)
		return nil, fmt.Errorf("%s (options %s): %w\n%s", name, strings.Join(opts, " "), err, log)
	}
	var size uint64
	if err := a.check("nvrtcGetCUBINSize", a.nvrtcGetCUBINSize(prog, &size)); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, fmt.Errorf("%w: %s: nvrtcGetCUBINSize: empty CUBIN", ErrNVRTC, name)
	}
	cubin := make([]byte, size)
	if err := a.check("nvrtcGetCUBIN", a.nvrtcGetCUBIN(prog, &cubin[0])); err != nil {
		return nil, err
	}
	return cubin, nil
}

// log returns the program's compile log, trimmed.
func (a *nvrtcAPI) log(prog uintptr) string {
	var size uint64
	if a.nvrtcGetProgramLogSize(prog, &size) != 0 || size <= 1 {
		return ""
	}
	buf := make([]byte, size)
	if a.nvrtcGetProgramLog(prog, &buf[0]) != 0 {
		return ""
	}
	return strings.TrimSpace(strings.TrimRight(string(buf), "\x00"))
}
