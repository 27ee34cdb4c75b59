package cuda

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/mlxq/mlxq/quant"
)

// fakeGPU implements cuAPI in Go memory, so that everything but the
// kernels can be tested without a GPU. Copies happen at once; the unpack
// kernel runs in Go; other launches are only recorded.
type fakeGPU struct {
	mu sync.Mutex

	initCode    int32
	deviceCount int32
	launchCode  int32
	loadCode    int32

	nextPtr  uint64
	dev      map[uint64][]byte
	host     map[unsafe.Pointer][]byte
	events   map[uintptr]bool
	modules  map[uintptr]string
	nextID   uintptr
	launches []fakeLaunch
	links    int
	syncs    int
	retained int
	streams  int
	funcAttr map[uintptr]int32

	// CUDA graphs: launches recorded while capturing, graphs and
	// executable graphs by handle, and how many were made.
	captureCode  int32
	capturing    bool
	captured     []fakeLaunch
	graphs       map[uintptr][]fakeLaunch
	execs        map[uintptr][]fakeLaunch
	instantiated int
}

type fakeLaunch struct {
	image       string
	grid, block [3]uint32
	shared      uint32
	params      [maxParams]uint64
}

func newFakeGPU() *fakeGPU {
	return &fakeGPU{
		deviceCount: 1, nextPtr: 1 << 20,
		dev: map[uint64][]byte{}, host: map[unsafe.Pointer][]byte{}, events: map[uintptr]bool{},
		modules: map[uintptr]string{}, funcAttr: map[uintptr]int32{},
		graphs: map[uintptr][]fakeLaunch{}, execs: map[uintptr][]fakeLaunch{},
	}
}

var fakeErrors = map[int32][2]string{
	1:   {"CUDA_ERROR_INVALID_VALUE", "invalid argument"},
	2:   {"CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
	100: {"CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
	200: {"CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
	700: {"CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
}

// cStrings keeps the C strings handed out by the fake alive.
var cStrings sync.Map

func fakeCString(s string) *byte {
	if v, ok := cStrings.Load(s); ok {
		return v.(*byte)
	}
	b := cString(s)
	v, _ := cStrings.LoadOrStore(s, &b[0])
	return v.(*byte)
}

// execute records launch l and runs it if it is the unpack kernel; the
// caller holds f.mu.
func (f *fakeGPU) execute(l fakeLaunch) {
	f.launches = append(f.launches, l)
	if strings.Contains(l.image, "unpack") {
		bits, _ := strconv.Atoi(bitsRE.FindStringSubmatch(l.image)[1])
		rows, cols := int(int32(l.params[2])), int(int32(l.params[3]))
		rb := quant.RowBytes(cols, bits)
		w := f.find(l.params[0], uint64(rows*rb))
		codes := f.find(l.params[1], uint64(rows*cols))
		for r := range rows {
			quant.Unpack(codes[r*cols:(r+1)*cols], w[r*rb:(r+1)*rb], bits)
		}
	}
}

// find returns the device bytes at address p, n long.
func (f *fakeGPU) find(p uint64, n uint64) []byte {
	for base, b := range f.dev {
		if p >= base && p+n <= base+uint64(len(b)) {
			return b[p-base : p-base+n]
		}
	}
	panic(fmt.Sprintf("fake: %d bytes at %#x are not device memory", n, p))
}

func (f *fakeGPU) id() uintptr { f.nextID++; return f.nextID }

var bitsRE = regexp.MustCompile(`bits=(\d+)`)

func (f *fakeGPU) api() *cuAPI {
	lock := func() func() { f.mu.Lock(); return f.mu.Unlock }
	return &cuAPI{
		cuInit:             func(uint32) int32 { return f.initCode },
		cuDriverGetVersion: func(v *int32) int32 { *v = 13000; return 0 },
		cuGetErrorName: func(code int32, s **byte) int32 {
			e, ok := fakeErrors[code]
			if !ok {
				return 1
			}
			*s = fakeCString(e[0])
			return 0
		},
		cuGetErrorString: func(code int32, s **byte) int32 {
			e, ok := fakeErrors[code]
			if !ok {
				return 1
			}
			*s = fakeCString(e[1])
			return 0
		},
		cuDeviceGetCount: func(n *int32) int32 { *n = f.deviceCount; return 0 },
		cuDeviceGet:      func(d *int32, i int32) int32 { *d = i; return 0 },
		cuDeviceGetName: func(name *byte, n int32, dev int32) int32 {
			copy(unsafe.Slice(name, n), "Fake GPU\x00")
			return 0
		},
		cuDeviceGetAttribute: func(v *int32, attr int32, dev int32) int32 {
			*v = map[int32]int32{attrComputeCapMajor: 9, attrComputeCapMinor: 0, attrMultiprocessorCount: 132,
				attrMaxSharedPerBlockOpt: 227 << 10, attrMaxThreadsPerBlock: 1024}[attr]
			return 0
		},
		cuDeviceTotalMem:          func(b *uint64, dev int32) int32 { *b = 150_000_000_000; return 0 },
		cuDevicePrimaryCtxRetain:  func(c *uintptr, dev int32) int32 { defer lock()(); f.retained++; *c = 77; return 0 },
		cuDevicePrimaryCtxRelease: func(dev int32) int32 { defer lock()(); f.retained--; return 0 },
		cuCtxSetCurrent:           func(uintptr) int32 { return 0 },
		cuStreamCreate:            func(s *uintptr, flags uint32) int32 { defer lock()(); f.streams++; *s = f.id(); return 0 },
		cuStreamDestroy:           func(uintptr) int32 { defer lock()(); f.streams--; return 0 },
		cuStreamSynchronize:       func(uintptr) int32 { defer lock()(); f.syncs++; return 0 },
		cuMemAlloc: func(p *uint64, n uint64) int32 {
			defer lock()()
			*p = f.nextPtr
			f.dev[f.nextPtr] = make([]byte, n)
			f.nextPtr += (n + 4095) / 4096 * 4096
			return 0
		},
		cuMemFree: func(p uint64) int32 {
			defer lock()()
			if _, ok := f.dev[p]; !ok {
				return 1
			}
			delete(f.dev, p)
			return 0
		},
		cuMemAllocHost: func(p *unsafe.Pointer, n uint64) int32 {
			defer lock()()
			b := make([]byte, n)
			*p = unsafe.Pointer(&b[0])
			f.host[*p] = b
			return 0
		},
		cuMemFreeHost: func(p unsafe.Pointer) int32 {
			defer lock()()
			if _, ok := f.host[p]; !ok {
				return 1
			}
			delete(f.host, p)
			return 0
		},
		cuMemGetInfo: func(free, total *uint64) int32 { *free, *total = 1<<30, 2<<30; return 0 },
		cuMemsetD8Async: func(dst uint64, v uint8, n uint64, s uintptr) int32 {
			defer lock()()
			b := f.find(dst, n)
			for i := range b {
				b[i] = v
			}
			return 0
		},
		cuMemcpyHtoDAsync: func(dst uint64, src unsafe.Pointer, n uint64, s uintptr) int32 {
			defer lock()()
			copy(f.find(dst, n), unsafe.Slice((*byte)(src), n))
			return 0
		},
		cuMemcpyDtoHAsync: func(dst unsafe.Pointer, src uint64, n uint64, s uintptr) int32 {
			defer lock()()
			copy(unsafe.Slice((*byte)(dst), n), f.find(src, n))
			return 0
		},
		cuModuleLoadData: func(m *uintptr, image unsafe.Pointer) int32 {
			defer lock()()
			if f.loadCode != 0 {
				return f.loadCode
			}
			s := goString((*byte)(image))
			if !strings.HasPrefix(s, "FAKE:") {
				return cudaErrorInvalidImage
			}
			*m = f.id()
			f.modules[*m] = s
			return 0
		},
		cuModuleUnload: func(m uintptr) int32 {
			defer lock()()
			if _, ok := f.modules[m]; !ok {
				return 1
			}
			delete(f.modules, m)
			return 0
		},
		cuModuleGetFunction: func(fn *uintptr, m uintptr, name string) int32 {
			defer lock()()
			if name != kernelName {
				return 1
			}
			*fn = m // the function is named by its module
			return 0
		},
		cuFuncSetAttribute: func(fn uintptr, attr int32, v int32) int32 { defer lock()(); f.funcAttr[fn] = v; return 0 },
		cuLaunchKernel: func(fn uintptr, gx, gy, gz, bx, by, bz, shared uint32, s uintptr, params *unsafe.Pointer, extra *unsafe.Pointer) int32 {
			defer lock()()
			if f.launchCode != 0 {
				return f.launchCode
			}
			l := fakeLaunch{image: f.modules[fn], grid: [3]uint32{gx, gy, gz}, block: [3]uint32{bx, by, bz}, shared: shared}
			for i, p := range unsafe.Slice(params, maxParams) {
				l.params[i] = *(*uint64)(p)
			}
			if f.capturing {
				f.captured = append(f.captured, l)
				return 0
			}
			f.execute(l)
			return 0
		},
		cuStreamBeginCapture: func(s uintptr, mode int32) int32 {
			defer lock()()
			if f.captureCode != 0 {
				return f.captureCode
			}
			f.capturing, f.captured = true, nil
			return 0
		},
		cuStreamEndCapture: func(s uintptr, g *uintptr) int32 {
			defer lock()()
			f.capturing = false
			*g = f.id()
			f.graphs[*g] = f.captured
			return 0
		},
		cuGraphInstantiateWithFlags: func(e *uintptr, g uintptr, flags uint64) int32 {
			defer lock()()
			*e = f.id()
			f.execs[*e] = f.graphs[g]
			f.instantiated++
			return 0
		},
		cuGraphLaunch: func(e uintptr, s uintptr) int32 {
			defer lock()()
			ls, ok := f.execs[e]
			if !ok {
				return 1
			}
			for _, l := range ls {
				f.execute(l)
			}
			return 0
		},
		cuGraphExecDestroy: func(e uintptr) int32 { defer lock()(); delete(f.execs, e); return 0 },
		cuGraphDestroy:     func(g uintptr) int32 { defer lock()(); delete(f.graphs, g); return 0 },
		cuEventCreate:      func(e *uintptr, flags uint32) int32 { defer lock()(); *e = f.id(); f.events[*e] = true; return 0 },
		cuEventDestroy:     func(e uintptr) int32 { defer lock()(); delete(f.events, e); return 0 },
		cuEventRecord:      func(e, s uintptr) int32 { return 0 },
		cuEventSynchronize: func(e uintptr) int32 { return 0 },
		cuEventElapsedTime: func(ms *float32, a, b uintptr) int32 { *ms = 1.5; return 0 },
		cuLinkCreate:       func(n uint32, o *int32, v *uintptr, st *uintptr) int32 { defer lock()(); *st = f.id(); return 0 },
		cuLinkAddData: func(st uintptr, kind int32, data unsafe.Pointer, size uint64, name string, n uint32, o *int32, v *uintptr) int32 {
			defer lock()()
			if kind != jitInputPTX || size == 0 || unsafe.Slice((*byte)(data), size)[size-1] != 0 {
				return 1
			}
			f.modules[st] = name // remembered for cuLinkComplete
			return 0
		},
		cuLinkComplete: func(st uintptr, out *unsafe.Pointer, size *uint64) int32 {
			defer lock()()
			f.links++
			b := cString("FAKE:" + f.modules[st])
			delete(f.modules, st)
			*out, *size = unsafe.Pointer(&b[0]), uint64(len(b))
			f.host[*out] = b
			return 0
		},
		cuLinkDestroy: func(uintptr) int32 { return 0 },
	}
}

// fakeNVRTC implements nvrtcAPI: it "compiles" a source to an image naming
// the file and the bits of its preamble, and fails on sources with #error.
func fakeNVRTC() *nvrtcAPI {
	var mu sync.Mutex
	progs := map[uintptr]string{}
	names := map[uintptr]string{}
	var next uintptr
	image := func(p uintptr) []byte {
		bits := regexp.MustCompile(`MLXQ_BITS (\d+)`).FindStringSubmatch(progs[p])
		return cString(fmt.Sprintf("FAKE:%s bits=%s", names[p], bits[1]))
	}
	return &nvrtcAPI{
		version:             "13.0",
		nvrtcVersion:        func(a, b *int32) int32 { *a, *b = 13, 0; return 0 },
		nvrtcGetErrorString: func(code int32) *byte { return fakeCString(map[int32]string{6: "NVRTC_ERROR_COMPILATION"}[code]) },
		nvrtcCreateProgram: func(p *uintptr, src, name string, n int32, h, hn **byte) int32 {
			mu.Lock()
			defer mu.Unlock()
			next++
			*p = next
			progs[next], names[next] = src, name
			return 0
		},
		nvrtcCompileProgram: func(p uintptr, n int32, opts **byte) int32 {
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(progs[p], "#error") {
				return 6
			}
			return 0
		},
		nvrtcGetProgramLogSize: func(p uintptr, n *uint64) int32 { *n = uint64(len("unit.cu(3): error: boom\x00")); return 0 },
		nvrtcGetProgramLog: func(p uintptr, b *byte) int32 {
			copy(unsafe.Slice(b, 24), "unit.cu(3): error: boom\x00")
			return 0
		},
		nvrtcGetCUBINSize: func(p uintptr, n *uint64) int32 {
			mu.Lock()
			defer mu.Unlock()
			*n = uint64(len(image(p)))
			return 0
		},
		nvrtcGetCUBIN: func(p uintptr, b *byte) int32 {
			mu.Lock()
			defer mu.Unlock()
			img := image(p)
			copy(unsafe.Slice(b, len(img)), img)
			return 0
		},
		nvrtcDestroyProgram: func(p *uintptr) int32 { return 0 },
	}
}

// openFake opens a driver on a fake GPU, with NVRTC when rtc is set.
func openFake(t *testing.T, f *fakeGPU, rtc bool, cacheDir string) *Driver {
	t.Helper()
	load := func() (*nvrtcAPI, error) { return nil, fmt.Errorf("libnvrtc.so not found") }
	if rtc {
		load = func() (*nvrtcAPI, error) { return fakeNVRTC(), nil }
	}
	d, err := open(f.api(), load, config{cacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
